//! Deterministic demo data for the Sales CRM template: a year of leads, customers, contacts, opportunities and follow-ups with past-dated changes.
//!
//! Everything is drawn from one [`StdRng`] seeded with `seed`, on a one-minute grid of instants
//! counted back from `now`, so a given `(now, seed)` always yields the same records, ids and
//! histories. Activity happens in Beijing office hours, grows denser towards `now`, and follows
//! the pipeline: some leads convert into customers, opportunities move stage by stage (or are
//! lost, most often at the quote), each move is noted in a follow-up, and a customer's lifecycle
//! stage and last follow-up time follow its opportunities and follow-ups.

use std::collections::HashSet;

use chrono::{DateTime, NaiveDate, SecondsFormat, TimeDelta, Utc};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value};
use uuid::Uuid;

/// One change made to a demo record after its creation, at a past instant.
#[derive(Debug, Clone)]
pub struct DemoChange {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// The fields it set (API form), merged over the record's fields.
    pub fields: Map<String, Value>,
}

/// One demo record of a Sales CRM entity.
#[derive(Debug, Clone)]
pub struct DemoRecord {
    /// Entity key: "lead", "customer", "contact", "opportunity" or "follow_up".
    pub entity: &'static str,
    /// Its id (references in other records point at it).
    pub id: Uuid,
    /// When it was created (in the year before `now`).
    pub created_at: DateTime<Utc>,
    /// Its fields at creation (API form).
    pub fields: Map<String, Value>,
    /// Later changes in time order (all before `now`, after `created_at`).
    pub changes: Vec<DemoChange>,
    /// The demo person who owns it (a key of [`super::team::PEOPLE`]).
    pub owner: &'static str,
}

impl DemoRecord {
    /// A field's last value: the latest change naming it, else the value at creation.
    pub fn last(&self, key: &str) -> Option<&Value> {
        self.changes
            .iter()
            .rev()
            .find_map(|c| c.fields.get(key))
            .or_else(|| self.fields.get(key))
    }

    /// A text field's last value.
    pub fn text(&self, key: &str) -> Option<&str> {
        self.last(key).and_then(Value::as_str)
    }
}

/// Whether a built-in template can be cloned with generated sample records.
pub fn has_sample_data(template: &str) -> bool {
    template == super::SALES_CRM
}

/// The generated sample records of a built-in template (`None` when it has none).
pub fn sample_records(template: &str, now: DateTime<Utc>) -> Option<Vec<DemoRecord>> {
    has_sample_data(template).then(|| sales_crm(now, 1))
}

/// The demo data set, in dependency order (customers before contacts, opportunities and follow-ups that refer to them), deterministic for a given `now` and `seed`.
pub fn sales_crm(now: DateTime<Utc>, seed: u64) -> Vec<DemoRecord> {
    let mut g = Gen::new(now, seed);
    let mut leads = Vec::new();
    let mut customers = g.customers(&mut leads);
    while leads.len() < LEADS {
        let lead = g.open_lead();
        leads.push(lead);
    }
    let contacts = g.contacts(&mut customers);
    let deals = g.deals(&customers, &contacts);
    let follow_ups = g.follow_ups(&customers, &contacts, &deals);
    customer_history(&mut customers, &deals, &follow_ups);

    let mut out = Vec::new();
    let groups: [Vec<Draft>; 5] = [
        leads,
        customers.into_iter().map(|c| c.draft).collect(),
        contacts.into_iter().map(|c| c.draft).collect(),
        deals.into_iter().map(|d| d.draft).collect(),
        follow_ups.into_iter().map(|(_, d)| d).collect(),
    ];
    for mut group in groups {
        group.sort_by_key(|d| d.created);
        out.extend(group.into_iter().map(Draft::finish));
    }
    super::demo_after::extend(&mut out, now, seed);
    super::team::assign_owners(&mut out);
    out
}

const LEADS: usize = 240;
const CUSTOMERS: usize = 80;
const CONTACTS: usize = 160;
const OPPORTUNITIES: usize = 120;
const FOLLOW_UPS: usize = 600;
/// Customers with at least one opportunity; the rest are only nurtured.
const CUSTOMERS_WITH_DEALS: usize = 70;

/// Time is counted in whole minutes since the Unix epoch.
const HOUR: i64 = 60;
const DAY: i64 = 24 * HOUR;
/// Beijing time is UTC+8 all year.
const BEIJING: i64 = 8 * HOUR;

/// A city: name, province (for addresses), region (the `region` field), area code, pinyin,
/// weight, districts.
struct City {
    name: &'static str,
    province: &'static str,
    region: &'static str,
    area_code: &'static str,
    pinyin: &'static str,
    weight: u32,
    districts: &'static [&'static str],
}

const fn city(
    name: &'static str,
    province: &'static str,
    region: &'static str,
    area_code: &'static str,
    pinyin: &'static str,
    weight: u32,
    districts: &'static [&'static str],
) -> City {
    City {
        name,
        province,
        region,
        area_code,
        pinyin,
        weight,
        districts,
    }
}

const CITIES: &[City] = &[
    city(
        "上海",
        "上海市",
        "华东",
        "021",
        "shanghai",
        12,
        &["浦东新区", "徐汇区", "闵行区", "静安区", "杨浦区"],
    ),
    city(
        "杭州",
        "浙江省",
        "华东",
        "0571",
        "hangzhou",
        12,
        &["西湖区", "滨江区", "余杭区", "拱墅区", "上城区"],
    ),
    city(
        "南京",
        "江苏省",
        "华东",
        "025",
        "nanjing",
        7,
        &["鼓楼区", "建邺区", "江宁区", "玄武区"],
    ),
    city(
        "苏州",
        "江苏省",
        "华东",
        "0512",
        "suzhou",
        7,
        &["工业园区", "姑苏区", "吴中区", "相城区"],
    ),
    city(
        "宁波",
        "浙江省",
        "华东",
        "0574",
        "ningbo",
        5,
        &["鄞州区", "海曙区", "江北区"],
    ),
    city(
        "合肥",
        "安徽省",
        "华东",
        "0551",
        "hefei",
        4,
        &["蜀山区", "包河区", "高新区"],
    ),
    city(
        "无锡",
        "江苏省",
        "华东",
        "0510",
        "wuxi",
        3,
        &["滨湖区", "新吴区", "梁溪区"],
    ),
    city(
        "厦门",
        "福建省",
        "华东",
        "0592",
        "xiamen",
        3,
        &["思明区", "湖里区", "集美区"],
    ),
    city(
        "济南",
        "山东省",
        "华东",
        "0531",
        "jinan",
        3,
        &["历下区", "高新区", "槐荫区"],
    ),
    city(
        "青岛",
        "山东省",
        "华东",
        "0532",
        "qingdao",
        3,
        &["市南区", "崂山区", "黄岛区"],
    ),
    city(
        "广州",
        "广东省",
        "华南",
        "020",
        "guangzhou",
        9,
        &["天河区", "海珠区", "番禺区", "黄埔区"],
    ),
    city(
        "深圳",
        "广东省",
        "华南",
        "0755",
        "shenzhen",
        10,
        &["南山区", "福田区", "宝安区", "龙岗区"],
    ),
    city(
        "东莞",
        "广东省",
        "华南",
        "0769",
        "dongguan",
        4,
        &["南城街道", "松山湖", "长安镇"],
    ),
    city(
        "佛山",
        "广东省",
        "华南",
        "0757",
        "foshan",
        3,
        &["禅城区", "南海区", "顺德区"],
    ),
    city(
        "南宁",
        "广西壮族自治区",
        "华南",
        "0771",
        "nanning",
        2,
        &["青秀区", "西乡塘区"],
    ),
    city(
        "北京",
        "北京市",
        "华北",
        "010",
        "beijing",
        10,
        &["海淀区", "朝阳区", "东城区", "丰台区"],
    ),
    city(
        "天津",
        "天津市",
        "华北",
        "022",
        "tianjin",
        3,
        &["南开区", "滨海新区", "河西区"],
    ),
    city(
        "石家庄",
        "河北省",
        "华北",
        "0311",
        "shijiazhuang",
        2,
        &["长安区", "裕华区"],
    ),
    city(
        "太原",
        "山西省",
        "华北",
        "0351",
        "taiyuan",
        1,
        &["小店区", "迎泽区"],
    ),
    city(
        "武汉",
        "湖北省",
        "华中",
        "027",
        "wuhan",
        5,
        &["洪山区", "江汉区", "武昌区", "东湖高新区"],
    ),
    city(
        "长沙",
        "湖南省",
        "华中",
        "0731",
        "changsha",
        4,
        &["岳麓区", "雨花区", "开福区"],
    ),
    city(
        "郑州",
        "河南省",
        "华中",
        "0371",
        "zhengzhou",
        3,
        &["金水区", "郑东新区", "高新区"],
    ),
    city(
        "成都",
        "四川省",
        "西南",
        "028",
        "chengdu",
        7,
        &["高新区", "锦江区", "武侯区", "天府新区"],
    ),
    city(
        "重庆",
        "重庆市",
        "西南",
        "023",
        "chongqing",
        5,
        &["渝北区", "江北区", "九龙坡区"],
    ),
    city(
        "昆明",
        "云南省",
        "西南",
        "0871",
        "kunming",
        2,
        &["五华区", "盘龙区"],
    ),
    city(
        "贵阳",
        "贵州省",
        "西南",
        "0851",
        "guiyang",
        1,
        &["观山湖区", "南明区"],
    ),
    city(
        "西安",
        "陕西省",
        "西北",
        "029",
        "xian",
        4,
        &["雁塔区", "高新区", "未央区"],
    ),
    city(
        "兰州",
        "甘肃省",
        "西北",
        "0931",
        "lanzhou",
        1,
        &["城关区", "七里河区"],
    ),
    city(
        "沈阳",
        "辽宁省",
        "东北",
        "024",
        "shenyang",
        2,
        &["和平区", "浑南区"],
    ),
    city(
        "大连",
        "辽宁省",
        "东北",
        "0411",
        "dalian",
        2,
        &["中山区", "高新园区"],
    ),
    city(
        "哈尔滨",
        "黑龙江省",
        "东北",
        "0451",
        "haerbin",
        1,
        &["南岗区", "道里区"],
    ),
];

const ROADS: &[&str] = &[
    "人民路",
    "中山路",
    "建设路",
    "解放路",
    "科技路",
    "创业路",
    "学院路",
    "文化路",
    "长江路",
    "黄河路",
    "新华路",
    "和平路",
    "高新大道",
    "滨江大道",
    "世纪大道",
    "软件园路",
    "工业大道",
    "金融街",
    "江南大道",
    "天府大道",
];

/// An industry: option value, weight, words that end a company name (the agency for
/// `government`), domain tag.
struct Industry {
    key: &'static str,
    weight: u32,
    words: &'static [&'static str],
    tag: &'static str,
}

const INDUSTRIES: &[Industry] = &[
    Industry {
        key: "it_internet",
        weight: 18,
        words: &[
            "科技",
            "网络科技",
            "信息技术",
            "软件",
            "数字科技",
            "智能科技",
        ],
        tag: "tech",
    },
    Industry {
        key: "manufacturing",
        weight: 17,
        words: &[
            "机械制造",
            "精密机械",
            "电子",
            "新材料",
            "汽车零部件",
            "包装材料",
        ],
        tag: "",
    },
    Industry {
        key: "finance",
        weight: 6,
        words: &["投资管理", "融资租赁", "资产管理", "保险代理"],
        tag: "",
    },
    Industry {
        key: "retail",
        weight: 12,
        words: &["商贸", "电子商务", "贸易", "连锁商业"],
        tag: "",
    },
    Industry {
        key: "education",
        weight: 8,
        words: &["教育科技", "教育咨询", "文化教育"],
        tag: "edu",
    },
    Industry {
        key: "healthcare",
        weight: 8,
        words: &["医疗器械", "生物科技", "健康管理", "医药"],
        tag: "",
    },
    Industry {
        key: "real_estate",
        weight: 7,
        words: &["建筑工程", "置业", "装饰工程", "建设"],
        tag: "",
    },
    Industry {
        key: "logistics",
        weight: 7,
        words: &["物流", "供应链管理", "国际货运代理", "快运"],
        tag: "",
    },
    Industry {
        key: "professional_services",
        weight: 8,
        words: &["企业管理咨询", "人力资源", "财税咨询", "知识产权代理"],
        tag: "",
    },
    Industry {
        key: "government",
        weight: 3,
        words: &[
            "数据资源管理局",
            "市场监督管理局",
            "人力资源和社会保障局",
            "行政审批服务局",
            "大数据中心",
            "公共资源交易中心",
        ],
        tag: "",
    },
    Industry {
        key: "other",
        weight: 5,
        words: &["文化传媒", "餐饮管理", "农业科技", "环保科技"],
        tag: "",
    },
];

/// Industries in which an individual can be a customer.
const INDIVIDUAL_INDUSTRIES: &[&str] = &["retail", "education", "professional_services", "other"];

/// Company brand names and their pinyin (for domains).
const BRANDS: &[(&str, &str)] = &[
    ("云帆", "yunfan"),
    ("启明", "qiming"),
    ("恒通", "hengtong"),
    ("华创", "huachuang"),
    ("博远", "boyuan"),
    ("众信", "zhongxin"),
    ("鼎盛", "dingsheng"),
    ("睿达", "ruida"),
    ("新锐", "xinrui"),
    ("海纳", "haina"),
    ("天成", "tiancheng"),
    ("瑞丰", "ruifeng"),
    ("卓越", "zhuoyue"),
    ("金桥", "jinqiao"),
    ("星辰", "xingchen"),
    ("宏图", "hongtu"),
    ("远航", "yuanhang"),
    ("思创", "sichuang"),
    ("易达", "yida"),
    ("盛世", "shengshi"),
    ("联创", "lianchuang"),
    ("智联", "zhilian"),
    ("汇通", "huitong"),
    ("明德", "mingde"),
    ("嘉禾", "jiahe"),
    ("润泽", "runze"),
    ("凯越", "kaiyue"),
    ("青禾", "qinghe"),
    ("德润", "derun"),
    ("泰和", "taihe"),
    ("永信", "yongxin"),
    ("安泰", "antai"),
    ("蓝海", "lanhai"),
    ("领航", "linghang"),
    ("志远", "zhiyuan"),
    ("诚达", "chengda"),
    ("弘毅", "hongyi"),
    ("九州", "jiuzhou"),
    ("万象", "wanxiang"),
    ("中天", "zhongtian"),
    ("鸿运", "hongyun"),
    ("聚力", "juli"),
    ("精工", "jinggong"),
    ("同创", "tongchuang"),
    ("优品", "youpin"),
    ("乐享", "lexiang"),
    ("锦程", "jincheng"),
    ("天润", "tianrun"),
    ("鑫源", "xinyuan"),
    ("利丰", "lifeng"),
    ("百川", "baichuan"),
    ("千帆", "qianfan"),
    ("微澜", "weilan"),
    ("数智", "shuzhi"),
    ("云图", "yuntu"),
    ("新程", "xincheng"),
    ("和盛", "hesheng"),
    ("正源", "zhengyuan"),
    ("华耀", "huayao"),
    ("启航", "qihang"),
];

/// Surnames, most common first, with pinyin.
const SURNAMES: &[(&str, &str)] = &[
    ("王", "wang"),
    ("李", "li"),
    ("张", "zhang"),
    ("刘", "liu"),
    ("陈", "chen"),
    ("杨", "yang"),
    ("黄", "huang"),
    ("赵", "zhao"),
    ("吴", "wu"),
    ("周", "zhou"),
    ("徐", "xu"),
    ("孙", "sun"),
    ("马", "ma"),
    ("朱", "zhu"),
    ("胡", "hu"),
    ("郭", "guo"),
    ("何", "he"),
    ("林", "lin"),
    ("高", "gao"),
    ("罗", "luo"),
    ("郑", "zheng"),
    ("梁", "liang"),
    ("谢", "xie"),
    ("宋", "song"),
    ("唐", "tang"),
    ("许", "xu"),
    ("韩", "han"),
    ("冯", "feng"),
    ("邓", "deng"),
    ("曹", "cao"),
    ("彭", "peng"),
    ("曾", "zeng"),
    ("肖", "xiao"),
    ("田", "tian"),
    ("董", "dong"),
    ("潘", "pan"),
    ("袁", "yuan"),
    ("蒋", "jiang"),
    ("蔡", "cai"),
    ("余", "yu"),
    ("杜", "du"),
    ("叶", "ye"),
    ("程", "cheng"),
    ("魏", "wei"),
    ("苏", "su"),
    ("吕", "lv"),
    ("丁", "ding"),
    ("任", "ren"),
    ("沈", "shen"),
    ("姚", "yao"),
    ("卢", "lu"),
    ("钟", "zhong"),
    ("姜", "jiang"),
    ("崔", "cui"),
    ("谭", "tan"),
    ("陆", "lu"),
    ("范", "fan"),
    ("汪", "wang"),
    ("廖", "liao"),
    ("石", "shi"),
    ("金", "jin"),
    ("贾", "jia"),
    ("夏", "xia"),
    ("方", "fang"),
    ("邹", "zou"),
    ("熊", "xiong"),
    ("白", "bai"),
    ("孟", "meng"),
    ("秦", "qin"),
    ("邱", "qiu"),
    ("侯", "hou"),
    ("薛", "xue"),
    ("雷", "lei"),
    ("龙", "long"),
    ("顾", "gu"),
    ("邵", "shao"),
];

/// Two-character surnames, used with a one-character given name.
const COMPOUND_SURNAMES: &[(&str, &str)] = &[
    ("欧阳", "ouyang"),
    ("司马", "sima"),
    ("上官", "shangguan"),
    ("诸葛", "zhuge"),
];

/// One-character given names, with pinyin.
const GIVEN_SHORT: &[(&str, &str)] = &[
    ("伟", "wei"),
    ("芳", "fang"),
    ("娜", "na"),
    ("敏", "min"),
    ("静", "jing"),
    ("丽", "li"),
    ("强", "qiang"),
    ("磊", "lei"),
    ("军", "jun"),
    ("洋", "yang"),
    ("勇", "yong"),
    ("艳", "yan"),
    ("杰", "jie"),
    ("娟", "juan"),
    ("涛", "tao"),
    ("明", "ming"),
    ("超", "chao"),
    ("霞", "xia"),
    ("平", "ping"),
    ("刚", "gang"),
    ("华", "hua"),
    ("飞", "fei"),
    ("鹏", "peng"),
    ("斌", "bin"),
    ("宇", "yu"),
    ("浩", "hao"),
    ("凯", "kai"),
    ("婷", "ting"),
    ("雪", "xue"),
    ("琳", "lin"),
    ("晨", "chen"),
    ("鑫", "xin"),
    ("博", "bo"),
    ("倩", "qian"),
    ("颖", "ying"),
    ("璐", "lu"),
    ("昊", "hao"),
    ("健", "jian"),
    ("帆", "fan"),
    ("岚", "lan"),
];

/// Two-character given names, with pinyin syllables.
const GIVEN_LONG: &[(&str, &str)] = &[
    ("秀英", "xiu ying"),
    ("志强", "zhi qiang"),
    ("建华", "jian hua"),
    ("建国", "jian guo"),
    ("海燕", "hai yan"),
    ("晓东", "xiao dong"),
    ("晓明", "xiao ming"),
    ("文博", "wen bo"),
    ("思远", "si yuan"),
    ("佳琪", "jia qi"),
    ("雨涵", "yu han"),
    ("俊杰", "jun jie"),
    ("嘉怡", "jia yi"),
    ("一鸣", "yi ming"),
    ("天宇", "tian yu"),
    ("慧敏", "hui min"),
    ("丽娟", "li juan"),
    ("春梅", "chun mei"),
    ("国栋", "guo dong"),
    ("立新", "li xin"),
    ("振华", "zhen hua"),
    ("美玲", "mei ling"),
    ("红梅", "hong mei"),
    ("晓燕", "xiao yan"),
    ("欣怡", "xin yi"),
    ("子涵", "zi han"),
    ("浩然", "hao ran"),
    ("宇轩", "yu xuan"),
    ("梓萱", "zi xuan"),
    ("建军", "jian jun"),
    ("永强", "yong qiang"),
    ("雅婷", "ya ting"),
    ("晓峰", "xiao feng"),
    ("文静", "wen jing"),
    ("家豪", "jia hao"),
    ("明轩", "ming xuan"),
    ("诗琪", "shi qi"),
    ("海波", "hai bo"),
    ("凤英", "feng ying"),
    ("德明", "de ming"),
];

const MOBILE_PREFIXES: &[&str] = &[
    "130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152", "153",
    "155", "156", "157", "158", "159", "166", "176", "177", "180", "181", "182", "183", "185",
    "186", "187", "188", "189", "191", "198", "199",
];

/// Job titles of decision makers.
const DECIDERS: &[&str] = &[
    "总经理",
    "董事长",
    "副总经理",
    "CEO",
    "技术总监",
    "采购总监",
    "运营总监",
];
/// Job titles of influencers.
const INFLUENCERS: &[&str] = &[
    "IT 经理",
    "信息部主管",
    "销售总监",
    "财务经理",
    "市场部经理",
    "行政总监",
];
/// Job titles of day-to-day users.
const USERS: &[&str] = &[
    "销售主管",
    "行政专员",
    "客服主管",
    "运营专员",
    "销售经理",
    "财务专员",
];
/// Other job titles.
const OTHERS: &[&str] = &["总经理助理", "法务专员", "采购专员"];
/// Titles a contact is promoted to.
const PROMOTIONS: &[&str] = &[
    "副总经理",
    "运营总监",
    "销售总监",
    "信息中心主任",
    "采购经理",
];

const LEAD_SOURCES: &[(&str, u32)] = &[
    ("web_form", 30),
    ("referral", 15),
    ("event", 15),
    ("ads", 20),
    ("cold_call", 15),
    ("other", 5),
];

const CUSTOMER_SOURCES: &[(&str, u32)] = &[
    ("web_form", 15),
    ("referral", 30),
    ("event", 15),
    ("ads", 10),
    ("cold_call", 15),
    ("other", 15),
];

const EXPOS: &[&str] = &[
    "数字化转型峰会",
    "中国国际工业博览会",
    "SaaS 应用大会",
    "零售数字化论坛",
    "智慧城市博览会",
];

/// What the team sells, with the list price for a mid-sized company in yuan.
const PRODUCTS: &[(&str, f64)] = &[
    ("销售管理系统", 60_000.0),
    ("ERP 升级改造", 180_000.0),
    ("数据中台建设", 400_000.0),
    ("企业微信集成", 30_000.0),
    ("年度运维服务", 40_000.0),
    ("私有化部署", 250_000.0),
    ("SaaS 年度订阅", 36_000.0),
    ("营销自动化平台", 120_000.0),
    ("BI 报表定制开发", 80_000.0),
    ("门店管理系统", 90_000.0),
    ("供应链协同平台", 220_000.0),
    ("员工培训服务", 20_000.0),
    ("客服工单系统", 50_000.0),
    ("移动办公 App 定制", 150_000.0),
];

const DEAL_GOALS: &[&str] = &[
    "统一管理销售线索和客户资料，替换现有的 Excel 台账",
    "打通线上线下订单数据，老板能随时看到经营报表",
    "提升客服响应效率，工单处理时长缩短一半",
    "满足集团总部的数据上报和审计要求",
    "降低 IT 运维成本，减少自建系统的维护人力",
    "支撑明年新开门店的业务扩张",
];

const CUSTOMER_NOTES: &[&str] = &[
    "客户对价格比较敏感，决策流程较长",
    "老板亲自拍板，决策快",
    "之前用过竞品，对数据迁移有顾虑",
    "有集团总部统一采购的要求，需走招投标流程",
    "重视本地化服务和响应速度",
    "财务付款周期较长，一般月结 60 天",
    "IT 部门话语权较大，技术评估严格",
];

const UNQUALIFIED_REASONS: &[&str] = &[
    "预算不足，暂无采购计划",
    "只是了解行情，近期没有需求",
    "联系方式无效，多次联系未接通",
    "同行打探价格",
    "公司规模太小，不在目标客户范围",
];

/// Opportunity stages in pipeline order (`lost` is off the line).
const STAGES: [&str; 6] = [
    "lead",
    "first_contact",
    "needs_confirmed",
    "proposal",
    "contract_signed",
    "delivery",
];

/// For each stage before `delivery`: days to the next move (min, max) and the chance the deal
/// is lost there instead; the quote loses most.
const STAGE_FLOW: [(i64, i64, f64); 5] = [
    (1, 5, 0.05),
    (3, 20, 0.08),
    (5, 25, 0.1),
    (7, 40, 0.4),
    (5, 30, 0.0),
];

/// Follow-up templates of a situation: subject, (way, content) pairs, next steps.
struct Notes {
    subject: &'static str,
    lines: &'static [(&'static str, &'static str)],
    next: &'static [&'static str],
}

const NOTES_LEAD: Notes = Notes {
    subject: "线索初步接洽",
    lines: &[
        (
            "call",
            "客户通过官网留资咨询{product}，电话简单了解了基本情况，对方表示正在对比几家供应商",
        ),
        (
            "wechat",
            "加了{contact}的微信，发送了公司介绍和{product}的产品资料",
        ),
        (
            "call",
            "电话联系{contact}，确认有{product}方面的需求，约了下周详细沟通",
        ),
    ],
    next: &[
        "发送产品资料和成功案例",
        "约{contact}做一次线上演示",
        "了解客户预算和决策流程",
    ],
};

const NOTES_FIRST_CONTACT: Notes = Notes {
    subject: "初步沟通",
    lines: &[
        (
            "meeting",
            "与{contact}开了线上会议，演示了{product}的核心功能，客户对移动端比较感兴趣",
        ),
        (
            "call",
            "电话沟通了客户现状：目前用 Excel 管理客户资料，销售团队约{n}人，数据分散在个人手里",
        ),
        (
            "visit",
            "上门拜访{contact}，了解了公司组织架构和采购流程，下一步需要见到业务负责人",
        ),
    ],
    next: &[
        "整理需求清单发给客户确认",
        "安排产品经理参与需求调研",
        "约业务负责人见面",
    ],
};

const NOTES_NEEDS: Notes = Notes {
    subject: "需求确认",
    lines: &[
        (
            "visit",
            "现场调研了销售部和客服部，确认需求共{n}项，其中报表和审批流是重点",
        ),
        (
            "meeting",
            "与{contact}逐条确认了需求清单，客户希望{month}月底前上线",
        ),
        (
            "meeting",
            "需求评审会：客户 IT 部门提出要对接现有 ERP 系统，预计需要额外开发",
        ),
    ],
    next: &[
        "输出解决方案和初步报价",
        "准备方案演示材料",
        "评估接口开发工作量",
    ],
};

const NOTES_PROPOSAL: Notes = Notes {
    subject: "方案报价",
    lines: &[
        (
            "email",
            "发送了正式报价单，总价 {amount} 元，客户反馈价格偏高，希望再给些折扣",
        ),
        (
            "call",
            "电话沟通了报价细节（{amount} 元），客户希望下周安排现场演示",
        ),
        (
            "meeting",
            "向客户管理层汇报了解决方案，{contact}认可方案，{amount} 元的报价需要走内部审批",
        ),
    ],
    next: &["跟进客户内部审批进度", "准备合同草稿", "申请特价审批"],
};

const NOTES_SIGNED: Notes = Notes {
    subject: "合同签署",
    lines: &[
        (
            "visit",
            "合同已双方盖章，金额 {amount} 元，约定签约后 10 个工作日内支付首期款 50%",
        ),
        (
            "wechat",
            "商务谈判完成，最终以 {amount} 元成交，{contact}已安排财务走付款流程",
        ),
    ],
    next: &["安排项目启动会", "提交实施排期", "跟进首期款到账"],
};

const NOTES_DELIVERY: Notes = Notes {
    subject: "项目交付启动",
    lines: &[
        (
            "meeting",
            "召开项目启动会，实施顾问已进场，计划 {n} 个工作日完成上线",
        ),
        (
            "visit",
            "系统已完成部署并做了用户培训，共培训 {n} 人，客户反馈良好",
        ),
    ],
    next: &["两周后回访使用情况", "收取项目尾款", "整理交付验收文档"],
};

const NOTES_NURTURE: Notes = Notes {
    subject: "日常跟进",
    lines: &[
        ("wechat", "微信问候{contact}，分享了同行业客户的数字化案例"),
        ("call", "电话回访，了解客户近期业务情况，暂无新的采购计划"),
        (
            "email",
            "发送了产品新版本的功能介绍，邀请参加下月的线上直播",
        ),
        (
            "visit",
            "顺路拜访，和{contact}喝了杯咖啡，聊到明年可能扩大销售团队",
        ),
        (
            "meeting",
            "邀请客户参加公司举办的行业沙龙，{contact}到场交流",
        ),
    ],
    next: &["下月再电话回访", "发送行业白皮书", "邀请参加下次线下活动"],
};

const NOTES_CARE: Notes = Notes {
    subject: "售后回访",
    lines: &[
        (
            "call",
            "电话回访系统使用情况，客户反馈整体满意，提出两个报表优化建议",
        ),
        ("wechat", "{contact}咨询发票开具事宜，已协调财务处理"),
        (
            "visit",
            "季度回访，了解到客户计划新增分公司，可能有增购需求",
        ),
        ("email", "发送了系统升级通知和新版操作手册"),
        ("call", "客户反馈登录偶发卡顿，已提交技术支持工单跟进"),
        ("wechat", "节日问候，顺便和{contact}确认了续费时间"),
    ],
    next: &[
        "跟进优化建议的排期",
        "确认续费合同",
        "推荐增购模块",
        "下季度再次回访",
    ],
};

const LOST_NEXT: &[&str] = &[
    "保持联系，每季度回访一次",
    "明年预算周期前再跟进",
    "转入培育名单",
];

/// What a follow-up says about a deal lost for `reason`.
fn lost_line(reason: &str) -> (&'static str, &'static str) {
    match reason {
        "price" => (
            "call",
            "客户最终选择了报价更低的方案，我方报价高出约 {pct}%",
        ),
        "competitor" => ("call", "客户选择了竞品，对方在本地有实施团队，响应更快"),
        "no_budget" => ("wechat", "客户今年 IT 预算被削减，项目暂停，明年再议"),
        "no_decision" => ("call", "客户内部对项目优先级有分歧，迟迟无法决策，项目搁置"),
        _ => ("email", "客户公司业务调整，原有需求取消"),
    }
}

/// Lost reasons by stage: early deals die of budget and indecision, quotes of price.
fn lost_reasons(stage: &str) -> &'static [(&'static str, u32)] {
    match stage {
        "lead" | "first_contact" => &[
            ("no_budget", 35),
            ("no_decision", 35),
            ("competitor", 10),
            ("price", 5),
            ("other", 15),
        ],
        "needs_confirmed" => &[
            ("no_budget", 30),
            ("no_decision", 25),
            ("competitor", 25),
            ("price", 10),
            ("other", 10),
        ],
        _ => &[
            ("price", 45),
            ("competitor", 30),
            ("no_decision", 15),
            ("no_budget", 5),
            ("other", 5),
        ],
    }
}

/// Who a prospect is: industry, size and city.
#[derive(Clone, Copy)]
struct Profile {
    industry: &'static Industry,
    size: &'static str,
    city: &'static City,
}

/// A follow-up's subject, way, content template and possible next steps.
#[derive(Clone, Copy)]
struct Line {
    subject: &'static str,
    way: &'static str,
    content: &'static str,
    next: &'static [&'static str],
}

/// A generated person: name and pinyin.
#[derive(Clone)]
struct Person {
    name: String,
    surname: &'static str,
    /// Syllables separated by spaces.
    given: &'static str,
}

impl Person {
    fn given_pinyin(&self) -> String {
        self.given.split(' ').collect()
    }

    fn full_pinyin(&self) -> String {
        format!("{}{}", self.surname, self.given_pinyin())
    }

    fn initials(&self) -> String {
        self.given
            .split(' ')
            .filter_map(|s| s.chars().next())
            .collect()
    }
}

/// Someone who becomes a contact: a converted lead's person, or an individual customer.
#[derive(Clone)]
struct Seed {
    person: Person,
    title: Option<&'static str>,
    role: &'static str,
    phone: String,
    email: Option<String>,
}

/// A company (or a person, for individual customers) as other records name it.
struct Company {
    name: String,
    short: String,
    domain: Option<String>,
}

/// A record under construction; instants in minutes.
struct Draft {
    entity: &'static str,
    id: Uuid,
    created: i64,
    fields: Map<String, Value>,
    changes: Vec<(i64, Map<String, Value>)>,
}

impl Draft {
    /// Sorts and merges the changes of one instant, and converts the instants.
    fn finish(self) -> DemoRecord {
        let mut changes = self.changes;
        changes.sort_by_key(|(at, _)| *at);
        let mut merged: Vec<(i64, Map<String, Value>)> = Vec::new();
        for (at, fields) in changes {
            if fields.is_empty() {
                continue;
            }
            if let Some(last) = merged.last_mut()
                && last.0 == at
            {
                last.1.extend(fields);
            } else {
                merged.push((at, fields));
            }
        }
        DemoRecord {
            entity: self.entity,
            id: self.id,
            owner: "",
            created_at: instant(self.created),
            fields: self.fields,
            changes: merged
                .into_iter()
                .map(|(at, fields)| DemoChange {
                    at: instant(at),
                    fields,
                })
                .collect(),
        }
    }
}

struct Customer {
    draft: Draft,
    company: Company,
    size: &'static str,
    /// How much business the generator gives it (a: most); not stored, the stored tier is a
    /// formula.
    tier: &'static str,
    /// The person who must become its primary contact, if already known.
    seed: Option<Seed>,
    /// Indices into the contacts.
    contacts: Vec<usize>,
}

struct Contact {
    draft: Draft,
    name: String,
    role: &'static str,
}

/// One move of an opportunity.
struct DealEvent {
    at: i64,
    stage: &'static str,
    lost_reason: Option<&'static str>,
    /// Amount (fen) current after the move.
    amount: Option<i64>,
}

struct Deal {
    draft: Draft,
    customer: usize,
    contact: String,
    product: &'static str,
    first_stage: &'static str,
    events: Vec<DealEvent>,
}

/// The instant of minute `m`.
fn instant(m: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(m * 60, 0).unwrap_or_default()
}

/// A datetime field value: RFC 3339 UTC with milliseconds.
fn datetime_value(m: i64) -> Value {
    Value::String(instant(m).to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// The Beijing calendar date of minute `m`.
fn local_date(m: i64) -> NaiveDate {
    instant(m + BEIJING).date_naive()
}

/// A date field value: the Beijing date of `m` plus `days`.
fn date_value(m: i64, days: i64) -> Value {
    Value::String((local_date(m) + TimeDelta::days(days)).to_string())
}

/// A money value of `fen` (1/100 yuan): an integer when whole, else at most two decimals.
fn money(fen: i64) -> Value {
    if fen % 100 == 0 {
        Value::from(fen / 100)
    } else {
        Value::from(fen as f64 / 100.0)
    }
}

/// `fen` as yuan for text, with thousands separators: "128,000" or "52,870.50".
fn yuan_text(fen: i64) -> String {
    let digits = (fen / 100).to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    match fen % 100 {
        0 => grouped,
        cents => format!("{grouped}.{cents:02}"),
    }
}

/// `yuan` rounded to a price-list step (at least one step), in fen.
fn nice_fen(yuan: f64) -> i64 {
    let step = if yuan >= 100_000.0 {
        10_000.0
    } else if yuan >= 10_000.0 {
        1_000.0
    } else {
        100.0
    };
    ((yuan / step).round().max(1.0) * step) as i64 * 100
}

fn put(fields: &mut Map<String, Value>, key: &str, value: impl Into<Value>) {
    fields.insert(key.to_owned(), value.into());
}

/// The generator: the seeded RNG, the time window, and what must stay unique.
struct Gen {
    rng: StdRng,
    /// First minute of the year.
    start: i64,
    /// Last usable minute, strictly before `now`.
    end: i64,
    emails: HashSet<String>,
    phones: HashSet<String>,
    wechats: HashSet<String>,
    companies: HashSet<String>,
    domains: HashSet<String>,
}

impl Gen {
    fn new(now: DateTime<Utc>, seed: u64) -> Self {
        let now_minute = now.timestamp().div_euclid(60);
        Self {
            rng: StdRng::seed_from_u64(seed),
            start: now_minute - 365 * DAY,
            end: now_minute - 1,
            emails: HashSet::new(),
            phones: HashSet::new(),
            wechats: HashSet::new(),
            companies: HashSet::new(),
            domains: HashSet::new(),
        }
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.gen_bool(p)
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.rng.gen_range(0..items.len())]
    }

    /// An item, the first ones more often (lists are sorted most common first).
    fn common<T: Copy>(&mut self, items: &[T]) -> T {
        let u: f64 = self.rng.gen_range(0.0..1.0);
        let i = (items.len() as f64 * u.powf(1.7)) as usize;
        items[i.min(items.len() - 1)]
    }

    fn weighted<T: Copy>(&mut self, items: &[(T, u32)]) -> T {
        let total: u32 = items.iter().map(|(_, w)| w).sum();
        let mut roll = self.rng.gen_range(0..total);
        for &(item, weight) in items {
            if roll < weight {
                return item;
            }
            roll -= weight;
        }
        items[items.len() - 1].0
    }

    fn weighted_ref<T>(&mut self, items: &'static [T], weight: impl Fn(&T) -> u32) -> &'static T {
        let total: u32 = items.iter().map(&weight).sum();
        let mut roll = self.rng.gen_range(0..total);
        for item in items {
            if roll < weight(item) {
                return item;
            }
            roll -= weight(item);
        }
        &items[items.len() - 1]
    }

    /// An instant in `lo..=hi` in Beijing office hours near `target` when possible; `None` for
    /// an empty window.
    fn at(&mut self, lo: i64, hi: i64, target: i64) -> Option<i64> {
        if lo > hi {
            return None;
        }
        for _ in 0..4 {
            let m = self.office_hours(target.clamp(lo, hi));
            if (lo..=hi).contains(&m) {
                return Some(m);
            }
        }
        Some(self.rng.gen_range(lo..=hi))
    }

    /// A minute in office hours (sometimes the evening) on the Beijing day of `m`; weekends are
    /// mostly moved to a weekday of the same week.
    fn office_hours(&mut self, m: i64) -> i64 {
        let mut day = (m + BEIJING).div_euclid(DAY);
        // 1970-01-01 was a Thursday: 0 is Monday.
        let weekday = (day + 3).rem_euclid(7);
        if weekday >= 5 && self.chance(0.85) {
            day += self.rng.gen_range(0..5) - weekday;
        }
        let minute = match self.rng.gen_range(0..100) {
            0..45 => self.rng.gen_range(9 * HOUR..12 * HOUR),
            45..90 => self.rng.gen_range(13 * HOUR + 30..18 * HOUR),
            _ => self.rng.gen_range(18 * HOUR..21 * HOUR + 30),
        };
        day * DAY + minute - BEIJING
    }

    /// A minute in `lo..=hi`, later ones more likely (the business grows).
    fn recent(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        let u: f64 = self.rng.gen_range(0.0..1.0);
        lo + ((hi - lo) as f64 * u.powf(0.8)) as i64
    }

    /// A UUIDv7 for a record created at minute `m`.
    fn id(&mut self, m: i64) -> Uuid {
        let bytes: [u8; 10] = self.rng.r#gen();
        let millis = u64::try_from(m * 60_000).unwrap_or_default();
        uuid::Builder::from_unix_timestamp_millis(millis, &bytes).into_uuid()
    }

    fn draft(&mut self, entity: &'static str, created: i64) -> Draft {
        Draft {
            entity,
            id: self.id(created),
            created,
            fields: Map::new(),
            changes: Vec::new(),
        }
    }

    fn person(&mut self) -> Person {
        if self.chance(0.03) {
            let (surname, surname_py) = self.pick(COMPOUND_SURNAMES);
            let (given, given_py) = self.pick(GIVEN_SHORT);
            return Person {
                name: format!("{surname}{given}"),
                surname: surname_py,
                given: given_py,
            };
        }
        let (surname, surname_py) = self.common(SURNAMES);
        let (given, given_py) = if self.chance(0.4) {
            self.pick(GIVEN_SHORT)
        } else {
            self.pick(GIVEN_LONG)
        };
        Person {
            name: format!("{surname}{given}"),
            surname: surname_py,
            given: given_py,
        }
    }

    fn mobile(&mut self) -> String {
        loop {
            let prefix = self.pick(MOBILE_PREFIXES);
            let number: u32 = self.rng.gen_range(0..100_000_000);
            let phone = format!("{prefix}{number:08}");
            if self.phones.insert(phone.clone()) {
                return phone;
            }
        }
    }

    /// A switchboard number: a landline in `city`, or a 400 hotline for large companies.
    fn landline(&mut self, city: &City, size: &str) -> String {
        if size == "enterprise" && self.chance(0.4) {
            let a: u32 = self.rng.gen_range(600..1000);
            let b: u32 = self.rng.gen_range(0..10_000);
            return format!("400-{a}-{b:04}");
        }
        let first: u32 = self.rng.gen_range(2..9);
        let rest: u32 = self.rng.gen_range(0..10_000_000);
        format!("{}-{first}{rest:07}", city.area_code)
    }

    /// A unique email: at the company's domain, or a personal mailbox.
    fn email(&mut self, p: &Person, domain: Option<&str>) -> String {
        let surname = p.surname;
        let given = p.given_pinyin();
        let initials = p.initials();
        let (local, host) = match domain {
            Some(domain) if self.chance(0.8) => {
                let local = match self.rng.gen_range(0..5) {
                    0 => p.full_pinyin(),
                    1 => format!("{surname}.{given}"),
                    2 => format!("{given}.{surname}"),
                    3 => format!("{surname}{initials}"),
                    _ => format!("{initials}.{surname}"),
                };
                (local, domain.to_owned())
            }
            _ => match self.rng.gen_range(0..4) {
                0 => (
                    self.rng
                        .gen_range(100_000_000u64..3_000_000_000)
                        .to_string(),
                    "qq.com".to_owned(),
                ),
                1 => (
                    format!("{}{}", p.full_pinyin(), self.rng.gen_range(1975..2002)),
                    "163.com".to_owned(),
                ),
                2 => (
                    format!("{}{}", p.full_pinyin(), self.rng.gen_range(10..1000)),
                    "126.com".to_owned(),
                ),
                _ => (format!("{surname}_{given}"), "foxmail.com".to_owned()),
            },
        };
        let mut email = format!("{local}@{host}");
        let mut n = 1;
        while !self.emails.insert(email.clone()) {
            n += 1;
            email = format!("{local}{n}@{host}");
        }
        email
    }

    /// A unique WeChat id.
    fn wechat(&mut self, p: &Person, phone: &str) -> String {
        loop {
            let id = match self.rng.gen_range(0..4) {
                0 => {
                    let tail: String = (0..14)
                        .map(|_| {
                            let i = self.rng.gen_range(0..36u8);
                            char::from(if i < 10 { b'0' + i } else { b'a' + i - 10 })
                        })
                        .collect();
                    format!("wxid_{tail}")
                }
                1 => phone.to_owned(),
                2 => format!("{}{}", p.full_pinyin(), self.rng.gen_range(10..100)),
                _ => format!(
                    "{}_{}_{}",
                    p.surname,
                    p.given_pinyin(),
                    self.rng.gen_range(1..1000)
                ),
            };
            if self.wechats.insert(id.clone()) {
                return id;
            }
        }
    }

    fn birthday(&mut self) -> Value {
        let year = self.rng.gen_range(1966..=2000);
        let month = self.rng.gen_range(1..=12);
        let day = self.rng.gen_range(1..=28);
        Value::String(format!("{year:04}-{month:02}-{day:02}"))
    }

    fn city(&mut self) -> &'static City {
        self.weighted_ref(CITIES, |c| c.weight)
    }

    fn address(&mut self, city: &City, brand: &str) -> String {
        let district = self.pick(city.districts);
        let road = self.pick(ROADS);
        let number = self.rng.gen_range(1..2000);
        let building = match self.rng.gen_range(0..4) {
            0 => format!("{brand}大厦{}楼", self.rng.gen_range(2..30)),
            1 => format!(
                "国际中心{}座{}室",
                self.pick(&["A", "B", "C"]),
                self.rng.gen_range(501..2500)
            ),
            2 => format!(
                "科技园{}号楼{}层",
                self.rng.gen_range(1..12),
                self.rng.gen_range(2..9)
            ),
            _ => format!(
                "创业园{}栋{}室",
                self.rng.gen_range(1..20),
                self.rng.gen_range(101..800)
            ),
        };
        let city_part = if city.province.starts_with(city.name) {
            city.province.to_owned()
        } else {
            format!("{}{}市", city.province, city.name)
        };
        format!("{city_part}{district}{road}{number}号{building}")
    }

    /// A new company with a unique name (and domain) in `city`.
    fn company(&mut self, industry: &Industry, size: &str, city: &City) -> Company {
        loop {
            let (brand, brand_py) = self.pick(BRANDS);
            let word = self.pick(industry.words);
            if industry.key == "government" {
                let name = format!("{}市{word}", city.name);
                if self.companies.insert(name.clone()) {
                    return Company {
                        short: name.clone(),
                        name,
                        domain: None,
                    };
                }
                continue;
            }
            let suffix = if size == "enterprise" {
                self.pick(&["股份有限公司", "集团有限公司", "有限公司"])
            } else {
                "有限公司"
            };
            let name = format!("{}{brand}{word}{suffix}", city.name);
            if !self.companies.insert(name.clone()) {
                continue;
            }
            let tld = self.pick(&["com", "com", "cn", "com.cn"]);
            let tag = industry.tag;
            let candidates = [
                format!("{brand_py}{tag}.{tld}"),
                format!("{}{brand_py}.{tld}", city.pinyin),
                format!("{brand_py}{}.com", self.rng.gen_range(2..100)),
            ];
            let domain = candidates
                .into_iter()
                .find(|d| !self.domains.contains(d))
                .unwrap_or_else(|| format!("{brand_py}-{}.com", self.domains.len()));
            self.domains.insert(domain.clone());
            return Company {
                name,
                short: format!("{brand}{word}"),
                domain: Some(domain),
            };
        }
    }

    /// A new person at a company (or on their own), ready to be a lead or a contact.
    fn seed(&mut self, domain: Option<&str>, individual: bool) -> Seed {
        let person = self.person();
        let (title, role) = if individual {
            (None, "decision_maker")
        } else if self.chance(0.45) {
            (Some(self.pick(DECIDERS)), "decision_maker")
        } else {
            (Some(self.pick(INFLUENCERS)), "influencer")
        };
        let phone = self.mobile();
        let email = self.chance(0.85).then(|| self.email(&person, domain));
        Seed {
            person,
            title,
            role,
            phone,
            email,
        }
    }

    fn budget(&mut self, size: &str) -> Value {
        let yuan = match size {
            "enterprise" => self.rng.gen_range(200_000.0..1_500_000.0),
            "individual" => self.rng.gen_range(2_000.0..30_000.0),
            _ => self.rng.gen_range(20_000.0..300_000.0),
        };
        money(nice_fen(yuan))
    }

    fn lead_note(&mut self, source: &str, city: &City) -> String {
        let product = self.pick(PRODUCTS).0;
        match source {
            "web_form" => self
                .pick(&[
                    "官网留资，咨询{product}的价格",
                    "在官网申请了{product}的免费试用",
                    "官网在线客服转来的咨询，关注{product}",
                ])
                .replace("{product}", product),
            "referral" => self
                .pick(&[
                    "老客户推荐，说之前合作很愉快",
                    "合作伙伴转介绍",
                    "朋友介绍，对方用过我们的系统",
                ])
                .to_owned(),
            "event" => {
                if self.chance(0.5) {
                    format!("{}上扫码留资", self.pick(EXPOS))
                } else {
                    format!("参加了我们在{}举办的客户沙龙", city.name)
                }
            }
            "ads" => self
                .pick(&[
                    "百度搜索推广留资",
                    "抖音信息流广告表单",
                    "微信朋友圈广告留资",
                    "知乎广告落地页留资",
                ])
                .to_owned(),
            "cold_call" => self
                .pick(&[
                    "电话陌拜，对方表示可以先了解一下",
                    "行业名录筛选后电话联系，有初步意向",
                ])
                .to_owned(),
            _ => self
                .pick(&["客户主动来电咨询", "公众号文章后台留言咨询"])
                .to_owned(),
        }
    }

    /// A lead's fields at creation; the budget is known about a third of the time.
    fn lead_fields(
        &mut self,
        seed: &Seed,
        company: Option<&Company>,
        source: &str,
        profile: Profile,
        created: i64,
    ) -> Map<String, Value> {
        let Profile {
            industry,
            size,
            city,
        } = profile;
        let mut f = Map::new();
        put(&mut f, "name", seed.person.name.as_str());
        if let Some(company) = company {
            put(&mut f, "company", company.name.as_str());
        }
        if let Some(title) = seed.title {
            put(&mut f, "title", title);
        }
        put(&mut f, "phone", seed.phone.as_str());
        if let Some(email) = &seed.email {
            put(&mut f, "email", email.as_str());
        }
        put(&mut f, "source", source);
        put(&mut f, "status", "new");
        if self.chance(0.35) {
            let budget = self.budget(size);
            put(&mut f, "budget", budget);
        }
        put(&mut f, "company_size", size);
        put(&mut f, "region", city.region);
        put(&mut f, "industry", industry.key);
        if self.chance(0.7) {
            let days = self.rng.gen_range(0..3);
            put(&mut f, "next_follow_up_date", date_value(created, days));
        }
        if self.chance(0.75) {
            let note = self.lead_note(source, city);
            put(&mut f, "notes", note);
        }
        f
    }

    /// Industry, size and city of a new prospect.
    fn profile(&mut self) -> Profile {
        let industry = self.weighted_ref(INDUSTRIES, |i| i.weight);
        let size = if industry.key == "government" {
            "enterprise"
        } else {
            match self.rng.gen_range(0..100) {
                0..18 => "enterprise",
                18..90 => "smb",
                _ if INDIVIDUAL_INDUSTRIES.contains(&industry.key) => "individual",
                _ => "smb",
            }
        };
        Profile {
            industry,
            size,
            city: self.city(),
        }
    }

    /// The customers; about two in five came from a lead converted at their creation (pushed
    /// onto `leads`).
    fn customers(&mut self, leads: &mut Vec<Draft>) -> Vec<Customer> {
        let mut customers = Vec::new();
        for _ in 0..CUSTOMERS {
            let profile = self.profile();
            let Profile {
                industry,
                size,
                city,
            } = profile;
            let target = self.recent(self.start, self.end - DAY);
            let created = self
                .at(self.start, self.end - DAY, target)
                .unwrap_or(self.start);
            let individual = size == "individual";
            let mut seed = None;
            let company = if individual {
                let s = self.seed(None, true);
                let company = Company {
                    name: s.person.name.clone(),
                    short: s.person.name.clone(),
                    domain: None,
                };
                seed = Some(s);
                company
            } else {
                self.company(industry, size, city)
            };
            let from_lead = created - self.start > 10 * DAY && self.chance(0.45);
            let source = if from_lead {
                self.weighted(LEAD_SOURCES)
            } else {
                self.weighted(CUSTOMER_SOURCES)
            };
            if from_lead {
                let s = match seed.take() {
                    Some(s) => s,
                    None => self.seed(company.domain.as_deref(), false),
                };
                let lead = self.converted_lead(&s, &company, source, profile, created);
                leads.push(lead);
                seed = Some(s);
            }
            let tier = match (size, self.rng.gen_range(0..100)) {
                ("enterprise", 0..45) | ("smb", 0..8) => "a",
                ("enterprise", _) | ("smb", 8..40) | ("individual", 0..10) => "b",
                _ => "c",
            };
            let mut draft = self.draft("customer", created);
            let f = &mut draft.fields;
            put(f, "name", company.name.as_str());
            put(f, "industry", industry.key);
            put(f, "size", size);
            put(f, "region", city.region);
            put(f, "source", source);
            put(f, "lifecycle_stage", "first_contact");
            if self.chance(0.85) {
                let phone = if individual {
                    seed.as_ref()
                        .map(|s| s.phone.clone())
                        .unwrap_or_else(|| self.mobile())
                } else {
                    self.landline(city, size)
                };
                put(&mut draft.fields, "phone", phone);
            }
            if let Some(domain) = &company.domain
                && self.chance(0.65)
            {
                put(
                    &mut draft.fields,
                    "website",
                    format!("https://www.{domain}"),
                );
            }
            if !individual && self.chance(0.8) {
                let brand: String = company.short.chars().take(2).collect();
                let address = self.address(city, &brand);
                put(&mut draft.fields, "address", address);
            }
            if self.chance(0.5) {
                let mut notes = vec![self.pick(CUSTOMER_NOTES).to_owned()];
                if source == "event" {
                    notes.push(format!("在{}上结识", self.pick(EXPOS)));
                }
                put(&mut draft.fields, "notes", notes.join("；"));
            }
            customers.push(Customer {
                draft,
                company,
                size,
                tier,
                seed,
                contacts: Vec::new(),
            });
        }
        customers
    }

    /// A lead that was worked and converted into the customer created at `converted`.
    fn converted_lead(
        &mut self,
        seed: &Seed,
        company: &Company,
        source: &str,
        profile: Profile,
        converted: i64,
    ) -> Draft {
        let individual = profile.size == "individual";
        let lo = (converted - 45 * DAY).max(self.start);
        let hi = converted - 3 * DAY;
        let target = self.rng.gen_range(lo..=hi);
        let created = self.at(lo, hi, target).unwrap_or(lo);
        let mut draft = self.draft("lead", created);
        draft.fields = self.lead_fields(
            seed,
            (!individual).then_some(company),
            source,
            profile,
            created,
        );
        let span = converted - created;
        let mut budget_known = draft.fields.contains_key("budget");
        let target = created + self.rng.gen_range(30..=span / 4);
        let contacted = self.at(created + 30, created + span / 3, target);
        let mut last = created;
        if let Some(t) = contacted {
            let mut f = Map::new();
            put(&mut f, "status", "contacted");
            put(
                &mut f,
                "next_follow_up_date",
                date_value(t, self.rng.gen_range(2..7)),
            );
            draft.changes.push((t, f));
            last = t;
        }
        let target = last + self.rng.gen_range(DAY..=(converted - last) / 2 + DAY);
        if let Some(t) = self.at(last + 60, converted - 60, target) {
            let mut f = Map::new();
            put(&mut f, "status", "qualified");
            put(
                &mut f,
                "next_follow_up_date",
                date_value(t, self.rng.gen_range(2..7)),
            );
            if !budget_known {
                let budget = self.budget(profile.size);
                put(&mut f, "budget", budget);
                budget_known = true;
            }
            draft.changes.push((t, f));
        }
        let mut f = Map::new();
        put(&mut f, "status", "converted");
        if !budget_known {
            let budget = self.budget(profile.size);
            put(&mut f, "budget", budget);
        }
        draft.changes.push((converted, f));
        draft
    }

    /// A lead that did not become a customer: new, contacted, qualified or unqualified.
    fn open_lead(&mut self) -> Draft {
        let profile = self.profile();
        let Profile {
            industry,
            size,
            city,
        } = profile;
        let individual = size == "individual";
        let company = (!individual).then(|| self.company(industry, size, city));
        let seed = self.seed(
            company.as_ref().and_then(|c| c.domain.as_deref()),
            individual,
        );
        let source = self.weighted(LEAD_SOURCES);
        let target = self.recent(self.start, self.end - 60);
        let created = self
            .at(self.start, self.end - 60, target)
            .unwrap_or(self.start);
        let mut draft = self.draft("lead", created);
        draft.fields = self.lead_fields(&seed, company.as_ref(), source, profile, created);
        let mut budget_known = draft.fields.contains_key("budget");
        if !self.chance(0.9) {
            return draft;
        }
        let target = created + self.rng.gen_range(HOUR..3 * DAY);
        if target > self.end {
            return draft;
        }
        let Some(contacted) = self.at(created + 30, self.end, target) else {
            return draft;
        };
        let mut f = Map::new();
        put(&mut f, "status", "contacted");
        put(
            &mut f,
            "next_follow_up_date",
            date_value(contacted, self.rng.gen_range(2..8)),
        );
        if !budget_known && self.chance(0.3) {
            let budget = self.budget(size);
            put(&mut f, "budget", budget);
            budget_known = true;
        }
        draft.changes.push((contacted, f));
        let roll = self.rng.gen_range(0..100);
        let (status, days) = match roll {
            0..38 => ("unqualified", self.rng.gen_range(DAY..20 * DAY)),
            38..80 => ("qualified", self.rng.gen_range(3 * DAY..25 * DAY)),
            _ => return draft,
        };
        let target = contacted + days;
        if target > self.end {
            return draft;
        }
        let Some(t) = self.at(contacted + 60, self.end, target) else {
            return draft;
        };
        let mut f = Map::new();
        put(&mut f, "status", status);
        if status == "qualified" {
            put(
                &mut f,
                "next_follow_up_date",
                date_value(t, self.rng.gen_range(3..11)),
            );
            if !budget_known && self.chance(0.75) {
                let budget = self.budget(size);
                put(&mut f, "budget", budget);
            }
        } else {
            let reason = self.pick(UNQUALIFIED_REASONS);
            let notes = match draft.fields.get("notes").and_then(Value::as_str) {
                Some(before) => format!("{before}；{reason}"),
                None => reason.to_owned(),
            };
            put(&mut f, "notes", notes);
        }
        draft.changes.push((t, f));
        draft
    }

    /// 1–3 contacts per customer (one for individuals), 160 in all; the first is primary.
    fn contacts(&mut self, customers: &mut [Customer]) -> Vec<Contact> {
        let mut counts: Vec<usize> = customers
            .iter()
            .map(|c| {
                if c.size == "individual" {
                    1
                } else {
                    self.weighted(&[(1, 25), (2, 45), (3, 30)])
                }
            })
            .collect();
        let max = |c: &Customer| if c.size == "individual" { 1 } else { 3 };
        loop {
            let total: usize = counts.iter().sum();
            if total == CONTACTS {
                break;
            }
            let i = self.rng.gen_range(0..counts.len());
            if total < CONTACTS && counts[i] < max(&customers[i]) {
                counts[i] += 1;
            } else if total > CONTACTS && counts[i] > 1 {
                counts[i] -= 1;
            }
        }
        let mut contacts = Vec::new();
        for (ci, customer) in customers.iter_mut().enumerate() {
            let company_created = customer.draft.created;
            for k in 0..counts[ci] {
                let primary = k == 0;
                let (seed, role, created) = if primary {
                    let seed = match customer.seed.clone() {
                        Some(seed) => seed,
                        None => self.seed(customer.company.domain.as_deref(), false),
                    };
                    let role = seed.role;
                    let created = (company_created + self.rng.gen_range(2..30)).min(self.end);
                    (seed, role, created)
                } else {
                    let role = self.weighted(&[
                        ("decision_maker", 15),
                        ("influencer", 35),
                        ("user", 40),
                        ("other", 10),
                    ]);
                    let person = self.person();
                    let title = Some(self.pick(match role {
                        "decision_maker" => DECIDERS,
                        "influencer" => INFLUENCERS,
                        "user" => USERS,
                        _ => OTHERS,
                    }));
                    let phone = self.mobile();
                    let email = self
                        .chance(0.75)
                        .then(|| self.email(&person, customer.company.domain.as_deref()));
                    let lo = company_created + HOUR;
                    let target = self.recent(lo, self.end);
                    let created = self.at(lo, self.end, target).unwrap_or(self.end);
                    let seed = Seed {
                        person,
                        title,
                        role,
                        phone,
                        email,
                    };
                    (seed, role, created)
                };
                let mut draft = self.draft("contact", created);
                let f = &mut draft.fields;
                put(f, "name", seed.person.name.as_str());
                put(f, "customer", customer.draft.id.to_string());
                if let Some(title) = seed.title
                    && self.chance(0.9)
                {
                    put(&mut draft.fields, "title", title);
                }
                put(&mut draft.fields, "role", role);
                if self.chance(0.95) {
                    put(&mut draft.fields, "phone", seed.phone.as_str());
                }
                if let Some(email) = &seed.email {
                    put(&mut draft.fields, "email", email.as_str());
                }
                let has_wechat = self.chance(0.6);
                if has_wechat {
                    let wechat = self.wechat(&seed.person, &seed.phone);
                    put(&mut draft.fields, "wechat", wechat);
                }
                if self.chance(0.35) {
                    let birthday = self.birthday();
                    put(&mut draft.fields, "birthday", birthday);
                }
                put(&mut draft.fields, "is_primary", primary);
                // Later edits: a WeChat id added, a promotion.
                if !has_wechat && self.chance(0.3) {
                    let target = self.recent(created + 60, self.end);
                    if let Some(t) = self.at(created + 60, self.end, target) {
                        let mut f = Map::new();
                        put(&mut f, "wechat", self.wechat(&seed.person, &seed.phone));
                        draft.changes.push((t, f));
                    }
                }
                if seed.title.is_some() && self.chance(0.12) {
                    let target = self.recent(created + 30 * DAY, self.end);
                    if let Some(t) = self.at(created + 30 * DAY, self.end, target) {
                        let mut f = Map::new();
                        put(&mut f, "title", self.pick(PROMOTIONS));
                        draft.changes.push((t, f));
                    }
                }
                customer.contacts.push(contacts.len());
                contacts.push(Contact {
                    draft,
                    name: seed.person.name,
                    role,
                });
            }
        }
        contacts
    }

    /// 120 opportunities over 70 customers, each simulated through the pipeline.
    fn deals(&mut self, customers: &[Customer], contacts: &[Contact]) -> Vec<Deal> {
        let mut order: Vec<usize> = (0..customers.len()).collect();
        order.shuffle(&mut self.rng);
        let mut counts = vec![0usize; customers.len()];
        let with_deals = &order[..CUSTOMERS_WITH_DEALS.min(order.len())];
        for &i in with_deals {
            counts[i] = 1;
        }
        let mut total = with_deals.len();
        while total < OPPORTUNITIES {
            let i = self.pick(with_deals);
            let weight = match customers[i].tier {
                "a" => 0.9,
                "b" => 0.6,
                _ => 0.3,
            };
            let cap = if customers[i].size == "individual" {
                2
            } else {
                4
            };
            if counts[i] < cap && self.chance(weight) {
                counts[i] += 1;
                total += 1;
            }
        }
        let mut deals = Vec::new();
        for (ci, customer) in customers.iter().enumerate() {
            let mut used: Vec<&str> = Vec::new();
            for k in 0..counts[ci] {
                let Some(deal) = self.deal(ci, customer, contacts, k == 0, &mut used) else {
                    continue;
                };
                deals.push(deal);
            }
        }
        deals
    }

    fn deal(
        &mut self,
        ci: usize,
        customer: &Customer,
        contacts: &[Contact],
        first: bool,
        used: &mut Vec<&'static str>,
    ) -> Option<Deal> {
        let company_created = customer.draft.created;
        let primary_created = customer
            .contacts
            .first()
            .map_or(company_created, |&i| contacts[i].draft.created);
        let from_lead = customer.seed.is_some() && customer.size != "individual";
        let (created, first_stage) = if first && from_lead {
            let t = (primary_created + self.rng.gen_range(10..120)).min(self.end);
            (t, "first_contact")
        } else {
            let target = if first {
                company_created + self.rng.gen_range(HOUR..20 * DAY)
            } else {
                self.recent(company_created + 10 * DAY, self.end)
            };
            let t = self.at(primary_created + 5, self.end, target)?;
            let stage = if self.chance(0.65) {
                "lead"
            } else {
                "first_contact"
            };
            (t, stage)
        };
        let product = loop {
            let (product, _) = self.pick(PRODUCTS);
            if !used.contains(&product) {
                used.push(product);
                break product;
            }
        };
        let base = PRODUCTS
            .iter()
            .find(|(p, _)| *p == product)
            .map_or(50_000.0, |(_, price)| *price);
        let eligible: Vec<usize> = customer
            .contacts
            .iter()
            .copied()
            .filter(|&i| contacts[i].draft.created < created)
            .collect();
        let contact = if eligible.len() > 1 && self.chance(0.4) {
            let deciders: Vec<usize> = eligible
                .iter()
                .copied()
                .filter(|&i| contacts[i].role != "user")
                .collect();
            if deciders.is_empty() {
                self.pick(&eligible)
            } else {
                self.pick(&deciders)
            }
        } else {
            *eligible.first()?
        };

        let mut draft = self.draft("opportunity", created);
        let name = format!("{} - {product}", customer.company.short);
        let f = &mut draft.fields;
        put(f, "name", name);
        put(f, "customer", customer.draft.id.to_string());
        put(f, "contact", contacts[contact].draft.id.to_string());
        put(f, "stage", first_stage);
        put(
            f,
            "probability",
            if first_stage == "lead" { 10 } else { 20 },
        );
        let close_days = self.rng.gen_range(30..120);
        put(
            &mut draft.fields,
            "expected_close_date",
            date_value(created, close_days),
        );
        if self.chance(0.6) {
            let goal = self.pick(DEAL_GOALS);
            put(
                &mut draft.fields,
                "description",
                format!("客户希望{goal}。"),
            );
        }

        let multiplier = match customer.size {
            "enterprise" => self.rng.gen_range(2.0..5.0),
            "individual" => self.rng.gen_range(0.15..0.4),
            _ => self.rng.gen_range(0.6..1.6),
        };
        let mut amount: Option<i64> = None;
        let mut events = Vec::new();
        let mut index = STAGES.iter().position(|s| *s == first_stage).unwrap_or(0);
        let mut t = created;
        while index < STAGES.len() - 1 {
            let (min_days, max_days, lost_chance) = STAGE_FLOW[index];
            if index == 4 && !self.chance(0.85) {
                break;
            }
            let target = t + self.rng.gen_range(min_days * DAY..=max_days * DAY);
            if target > self.end {
                break;
            }
            let Some(at) = self.at(t + 30, self.end, target) else {
                break;
            };
            let mut f = Map::new();
            if self.chance(lost_chance) {
                let reason = self.weighted(lost_reasons(STAGES[index]));
                put(&mut f, "stage", "lost");
                put(&mut f, "lost_reason", reason);
                put(&mut f, "probability", 0);
                draft.changes.push((at, f));
                events.push(DealEvent {
                    at,
                    stage: "lost",
                    lost_reason: Some(reason),
                    amount,
                });
                break;
            }
            index += 1;
            let stage = STAGES[index];
            put(&mut f, "stage", stage);
            match stage {
                "first_contact" => put(&mut f, "probability", 20),
                "needs_confirmed" => {
                    let estimate = nice_fen(base * multiplier);
                    amount = Some(estimate);
                    put(&mut f, "probability", 40);
                    put(&mut f, "amount", money(estimate));
                }
                "proposal" => {
                    let estimate = amount.unwrap_or_else(|| nice_fen(base * multiplier));
                    let quoted = estimate as f64 / 100.0 * self.rng.gen_range(0.85..1.25);
                    let quote =
                        (nice_fen(quoted) / 100 - self.pick(&[0, 0, 200, 400])).max(100) * 100;
                    amount = Some(quote);
                    put(&mut f, "probability", self.pick(&[50, 60, 60, 70]));
                    put(&mut f, "amount", money(quote));
                    let days = self.rng.gen_range(7..45);
                    put(&mut f, "expected_close_date", date_value(at, days));
                }
                "contract_signed" => {
                    let quote = amount.unwrap_or_else(|| nice_fen(base * multiplier));
                    let per_mille: i64 = self.rng.gen_range(850..=1000);
                    let mut signed = quote * per_mille / 1000;
                    if self.chance(0.6) {
                        signed = (signed / 10_000).max(1) * 10_000;
                    }
                    amount = Some(signed);
                    put(&mut f, "probability", 100);
                    put(&mut f, "amount", money(signed));
                    put(&mut f, "expected_close_date", date_value(at, 0));
                }
                _ => put(&mut f, "probability", 100),
            }
            draft.changes.push((at, f));
            events.push(DealEvent {
                at,
                stage,
                lost_reason: None,
                amount,
            });
            t = at;
        }
        Some(Deal {
            draft,
            customer: ci,
            contact: contacts[contact].name.clone(),
            product,
            first_stage,
            events,
        })
    }

    /// One of the lines of `notes`.
    fn line(&mut self, notes: &Notes) -> Line {
        let (way, content) = self.pick(notes.lines);
        Line {
            subject: notes.subject,
            way,
            content,
            next: notes.next,
        }
    }

    /// Fills a template's placeholders.
    fn fill(
        &mut self,
        template: &str,
        contact: &str,
        product: &str,
        amount: Option<i64>,
    ) -> String {
        let mut text = template
            .replace("{contact}", contact)
            .replace("{product}", product);
        if let Some(fen) = amount {
            text = text.replace("{amount}", &yuan_text(fen));
        }
        if text.contains("{n}") {
            text = text.replace("{n}", &self.rng.gen_range(8..60).to_string());
        }
        if text.contains("{pct}") {
            text = text.replace("{pct}", &self.rng.gen_range(10..35).to_string());
        }
        if text.contains("{month}") {
            text = text.replace("{month}", &self.rng.gen_range(1..=12).to_string());
        }
        text
    }

    fn follow_up(
        &mut self,
        customer: &Customer,
        deal: Option<&Deal>,
        at: i64,
        line: Line,
        contact: &str,
        amount: Option<i64>,
    ) -> Draft {
        let product = deal.map_or("", |d| d.product);
        let mut draft = self.draft("follow_up", at);
        let content = self.fill(line.content, contact, product, amount);
        let f = &mut draft.fields;
        put(f, "subject", line.subject);
        put(f, "customer", customer.draft.id.to_string());
        if let Some(deal) = deal {
            put(f, "opportunity", deal.draft.id.to_string());
        }
        put(f, "way", line.way);
        put(f, "followed_at", datetime_value(at));
        put(f, "content", content);
        if self.chance(0.85) {
            let step = self.pick(line.next);
            let step = self.fill(step, contact, product, amount);
            put(&mut draft.fields, "next_step", step);
        }
        if self.chance(0.75) {
            let days = self.rng.gen_range(2..15);
            put(&mut draft.fields, "next_date", date_value(at, days));
        }
        draft
    }

    /// Follow-ups noting each deal's creation and moves, then everyday ones up to 600.
    fn follow_ups(
        &mut self,
        customers: &[Customer],
        contacts: &[Contact],
        deals: &[Deal],
    ) -> Vec<(usize, Draft)> {
        let mut out = Vec::new();
        for deal in deals {
            let customer = &customers[deal.customer];
            let opened = deal.draft.created + self.rng.gen_range(5..90);
            if opened <= self.end {
                let notes = if deal.first_stage == "lead" {
                    &NOTES_LEAD
                } else {
                    &NOTES_FIRST_CONTACT
                };
                let line = self.line(notes);
                let draft = self.follow_up(customer, Some(deal), opened, line, &deal.contact, None);
                out.push((deal.customer, draft));
            }
            for event in &deal.events {
                if !self.chance(0.9) {
                    continue;
                }
                let at = (event.at - self.rng.gen_range(0..90)).max(deal.draft.created + 1);
                let line = match (event.stage, event.lost_reason) {
                    ("lost", reason) => {
                        let (way, content) = lost_line(reason.unwrap_or("other"));
                        Line {
                            subject: "输单复盘",
                            way,
                            content,
                            next: LOST_NEXT,
                        }
                    }
                    (stage, _) => {
                        let notes = match stage {
                            "first_contact" => &NOTES_FIRST_CONTACT,
                            "needs_confirmed" => &NOTES_NEEDS,
                            "proposal" => &NOTES_PROPOSAL,
                            "contract_signed" => &NOTES_SIGNED,
                            _ => &NOTES_DELIVERY,
                        };
                        self.line(notes)
                    }
                };
                let draft =
                    self.follow_up(customer, Some(deal), at, line, &deal.contact, event.amount);
                out.push((deal.customer, draft));
            }
        }
        // When each customer first signed: after that, follow-ups are after-sales care.
        let mut signed: Vec<Option<i64>> = vec![None; customers.len()];
        for deal in deals {
            for event in deal.events.iter().filter(|e| e.stage == "contract_signed") {
                let first = signed[deal.customer].get_or_insert(event.at);
                *first = (*first).min(event.at);
            }
        }
        let mut attempts = 0;
        while out.len() < FOLLOW_UPS && attempts < FOLLOW_UPS * 20 {
            attempts += 1;
            let ci = self.rng.gen_range(0..customers.len());
            let customer = &customers[ci];
            let keep = match signed[ci] {
                Some(_) => 1.0,
                None => 0.6,
            };
            if !self.chance(keep) {
                continue;
            }
            let lo = customer.draft.created + HOUR;
            let target = self.recent(lo, self.end);
            let Some(at) = self.at(lo, self.end, target) else {
                continue;
            };
            let notes = match signed[ci] {
                Some(t) if t < at => &NOTES_CARE,
                _ => &NOTES_NURTURE,
            };
            let met: Vec<usize> = customer
                .contacts
                .iter()
                .copied()
                .filter(|&i| contacts[i].draft.created < at)
                .collect();
            let contact = match met.as_slice() {
                [] => customer.company.short.clone(),
                [only] => contacts[*only].name.clone(),
                many => contacts[self.pick(many)].name.clone(),
            };
            let line = self.line(notes);
            let draft = self.follow_up(customer, None, at, line, &contact, None);
            out.push((ci, draft));
        }
        out
    }
}

/// A customer's later changes: its lifecycle stage following its deals (its tier is a formula
/// over them), and `last_follow_up_at` at each follow-up.
fn customer_history(customers: &mut [Customer], deals: &[Deal], follow_ups: &[(usize, Draft)]) {
    for (ci, customer) in customers.iter_mut().enumerate() {
        let mut moves: Vec<(i64, &str, Option<i64>)> = deals
            .iter()
            .filter(|d| d.customer == ci)
            .flat_map(|d| d.events.iter().map(|e| (e.at, e.stage, e.amount)))
            .collect();
        moves.sort_by_key(|m| m.0);
        let mut stage = "first_contact";
        let mut wins = 0;
        for (at, deal_stage, _) in moves {
            let next = match deal_stage {
                "needs_confirmed" | "proposal" if stage == "first_contact" => "intent",
                "contract_signed" => {
                    wins += 1;
                    if wins > 1 { "repeat" } else { "signed" }
                }
                "delivery" if stage == "signed" => "after_sales",
                _ => stage,
            };
            if next == stage {
                continue;
            }
            stage = next;
            let mut f = Map::new();
            put(&mut f, "lifecycle_stage", stage);
            customer.draft.changes.push((at, f));
        }
        for (_, draft) in follow_ups.iter().filter(|(c, _)| *c == ci) {
            let mut f = Map::new();
            put(&mut f, "last_follow_up_at", datetime_value(draft.created));
            customer.draft.changes.push((draft.created, f));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use chrono::TimeZone;

    use super::*;

    const SCHEMAS: [(&str, &str); 11] = [
        (
            "lead",
            include_str!("../../schemas/templates/sales-crm/entities/lead.json"),
        ),
        (
            "customer",
            include_str!("../../schemas/templates/sales-crm/entities/customer.json"),
        ),
        (
            "contact",
            include_str!("../../schemas/templates/sales-crm/entities/contact.json"),
        ),
        (
            "opportunity",
            include_str!("../../schemas/templates/sales-crm/entities/opportunity.json"),
        ),
        (
            "follow_up",
            include_str!("../../schemas/templates/sales-crm/entities/follow_up.json"),
        ),
        (
            "task",
            include_str!("../../schemas/templates/sales-crm/entities/task.json"),
        ),
        (
            "contract",
            include_str!("../../schemas/templates/sales-crm/entities/contract.json"),
        ),
        (
            "payment_plan",
            include_str!("../../schemas/templates/sales-crm/entities/payment_plan.json"),
        ),
        (
            "payment_received",
            include_str!("../../schemas/templates/sales-crm/entities/payment_received.json"),
        ),
        (
            "ticket",
            include_str!("../../schemas/templates/sales-crm/entities/ticket.json"),
        ),
        (
            "survey",
            include_str!("../../schemas/templates/sales-crm/entities/survey.json"),
        ),
    ];

    struct Entity {
        schema: Value,
        validator: jsonschema::Validator,
    }

    fn entities() -> HashMap<&'static str, Entity> {
        SCHEMAS
            .iter()
            .map(|(key, text)| {
                let schema: Value = serde_json::from_str(text).expect("schema is JSON");
                let validator = jsonschema::options()
                    .should_validate_formats(true)
                    .build(&schema)
                    .expect("schema compiles");
                (*key, Entity { schema, validator })
            })
            .collect()
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 4, 9, 30, 0)
            .single()
            .expect("valid instant")
    }

    /// A `now` off the minute grid, with sub-second digits.
    fn odd_now() -> DateTime<Utc> {
        now() + TimeDelta::milliseconds(37_250)
    }

    fn final_fields(record: &DemoRecord) -> Map<String, Value> {
        let mut fields = record.fields.clone();
        for change in &record.changes {
            fields.extend(change.fields.clone());
        }
        fields
    }

    fn text<'a>(fields: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
        fields.get(key).and_then(Value::as_str)
    }

    fn parse_datetime(value: &str) -> DateTime<Utc> {
        assert!(
            value.len() == 24 && value.ends_with('Z') && value.as_bytes()[19] == b'.',
            "not RFC 3339 with milliseconds and Z: {value}"
        );
        DateTime::parse_from_rfc3339(value)
            .expect("RFC 3339")
            .with_timezone(&Utc)
    }

    #[test]
    fn same_now_and_seed_give_the_same_records() {
        let a = sales_crm(now(), 7);
        let b = sales_crm(now(), 7);
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.entity, y.entity);
            assert_eq!(x.id, y.id);
            assert_eq!(x.created_at, y.created_at);
            assert_eq!(x.fields, y.fields);
            assert_eq!(x.changes.len(), y.changes.len());
            for (c, d) in x.changes.iter().zip(&y.changes) {
                assert_eq!(c.at, d.at);
                assert_eq!(c.fields, d.fields);
            }
        }
        let other = sales_crm(now(), 8);
        assert_ne!(
            a.iter().map(|r| r.id).collect::<Vec<_>>(),
            other.iter().map(|r| r.id).collect::<Vec<_>>()
        );
    }

    #[test]
    fn sizes_are_as_documented() {
        for seed in [1, 2, 3] {
            let records = sales_crm(now(), seed);
            let count = |entity: &str| records.iter().filter(|r| r.entity == entity).count();
            assert_eq!(count("lead"), LEADS);
            assert_eq!(count("customer"), CUSTOMERS);
            assert_eq!(count("contact"), CONTACTS);
            assert!((OPPORTUNITIES - 5..=OPPORTUNITIES).contains(&count("opportunity")));
            assert!((FOLLOW_UPS - 10..=FOLLOW_UPS + 60).contains(&count("follow_up")));
            // Some deals of each outcome, and some leads converted.
            let stages: Vec<String> = records
                .iter()
                .filter(|r| r.entity == "opportunity")
                .filter_map(|r| text(&final_fields(r), "stage").map(str::to_owned))
                .collect();
            for stage in ["lost", "delivery", "proposal"] {
                assert!(stages.iter().any(|s| s == stage), "seed {seed}: no {stage}");
            }
            assert!(
                records
                    .iter()
                    .filter(|r| r.entity == "lead")
                    .any(|r| text(&final_fields(r), "status") == Some("converted"))
            );
        }
    }

    #[test]
    fn records_are_valid_and_consistent() {
        let entities = entities();
        for (now, seed) in [(now(), 1), (odd_now(), 42), (now(), 2026)] {
            check(&entities, now, &sales_crm(now, seed));
        }
    }

    fn check(entities: &HashMap<&'static str, Entity>, now: DateTime<Utc>, records: &[DemoRecord]) {
        let window_start = now - TimeDelta::days(366);
        let in_window = |at: DateTime<Utc>, what: &str| {
            assert!(
                at > window_start && at <= now,
                "{what} {at} is outside the year before {now}"
            );
        };
        let mut seen: HashMap<Uuid, &DemoRecord> = HashMap::new();
        let mut lead_emails = HashSet::new();
        for record in records {
            let entity = entities.get(record.entity).expect("known entity");
            let properties = entity.schema["properties"].as_object().expect("properties");
            in_window(record.created_at, "created_at");
            // Each state: at creation, then after each change.
            let mut state = record.fields.clone();
            let mut states = vec![state.clone()];
            let mut previous = record.created_at;
            for change in &record.changes {
                assert!(
                    change.at > previous,
                    "{} {}: changes out of order",
                    record.entity,
                    record.id
                );
                assert!(change.at < now);
                assert!(!change.fields.is_empty());
                previous = change.at;
                state.extend(change.fields.clone());
                states.push(state.clone());
            }
            for fields in &states {
                let instance = Value::Object(fields.clone());
                let errors: Vec<String> = entity
                    .validator
                    .iter_errors(&instance)
                    .map(|e| format!("{}: {e}", e.instance_path()))
                    .collect();
                assert!(
                    errors.is_empty(),
                    "{} {}: {errors:?}\n{instance:#}",
                    record.entity,
                    record.id
                );
                for (key, value) in fields {
                    let property = properties
                        .get(key)
                        .unwrap_or_else(|| panic!("{}: undeclared field {key}", record.entity));
                    let kind = property["x-kind"].as_str().expect("x-kind");
                    assert!(
                        !matches!(
                            kind,
                            "formula" | "rollup" | "auto_number" | "user" | "attachment"
                        ),
                        "{key} is computed or reserved"
                    );
                    match kind {
                        "reference" => {
                            let target: Uuid = value.as_str().expect("id").parse().expect("uuid");
                            assert_eq!(value.as_str(), Some(target.to_string().as_str()));
                            let wanted =
                                property["x-reference"]["entity"].as_str().expect("entity");
                            let found = seen.get(&target).unwrap_or_else(|| {
                                panic!(
                                    "{} {}: {key} points at no earlier record",
                                    record.entity, record.id
                                )
                            });
                            assert_eq!(found.entity, wanted);
                        }
                        "datetime" => {
                            in_window(parse_datetime(value.as_str().expect("string")), key);
                        }
                        "money" => {
                            let yuan = value.as_f64().expect("number");
                            assert!(yuan >= 0.0);
                            assert!(
                                ((yuan * 100.0).round() - yuan * 100.0).abs() < 1e-6,
                                "{yuan}"
                            );
                        }
                        "percent" => {
                            let percent = value.as_f64().expect("number");
                            assert!((0.0..=100.0).contains(&percent));
                        }
                        _ => {}
                    }
                }
                if record.entity == "opportunity" && text(fields, "stage") == Some("lost") {
                    assert!(fields.contains_key("lost_reason"));
                }
            }
            if record.entity == "lead"
                && let Some(email) = text(&record.fields, "email")
            {
                assert!(
                    lead_emails.insert(email.to_owned()),
                    "lead email {email} repeated"
                );
            }
            assert!(
                seen.insert(record.id, record).is_none(),
                "id {} repeated",
                record.id
            );
        }

        // Contacts: exactly one primary per customer.
        let finals: Vec<(&DemoRecord, Map<String, Value>)> =
            records.iter().map(|r| (r, final_fields(r))).collect();
        let of = |entity: &'static str| finals.iter().filter(move |(r, _)| r.entity == entity);
        for (customer, fields) in of("customer") {
            let id = customer.id.to_string();
            let primaries = of("contact")
                .filter(|(_, f)| text(f, "customer") == Some(id.as_str()))
                .filter(|(_, f)| f.get("is_primary") == Some(&Value::Bool(true)))
                .count();
            assert_eq!(primaries, 1, "customer {id}");
            // Follow-ups: after the customer's creation; last_follow_up_at is the latest.
            let latest = of("follow_up")
                .filter(|(_, f)| text(f, "customer") == Some(id.as_str()))
                .map(|(r, f)| {
                    let at = parse_datetime(text(f, "followed_at").expect("followed_at"));
                    assert_eq!(r.created_at, at);
                    assert!(at > customer.created_at);
                    at
                })
                .max();
            let last = text(fields, "last_follow_up_at").map(parse_datetime);
            assert_eq!(last, latest, "customer {id}");
            if let Some(last) = last {
                assert!(last >= customer.created_at);
            }
        }
        // A follow-up's opportunity belongs to its customer and existed by then.
        for (follow_up, fields) in of("follow_up") {
            if let Some(deal) = text(fields, "opportunity") {
                let deal = seen[&deal.parse::<Uuid>().expect("uuid")];
                assert_eq!(text(&deal.fields, "customer"), text(fields, "customer"));
                assert!(deal.created_at < follow_up.created_at);
            }
        }
        // Opportunities only move forward, or to lost; lost_reason only when lost.
        for (deal, fields) in of("opportunity") {
            let mut at = STAGES
                .iter()
                .position(|s| Some(*s) == text(&deal.fields, "stage"))
                .expect("a pipeline stage");
            for change in &deal.changes {
                match text(&change.fields, "stage") {
                    Some("lost") => assert!(change.fields.contains_key("lost_reason")),
                    Some(stage) => {
                        let next = STAGES.iter().position(|s| *s == stage).expect("stage");
                        assert_eq!(next, at + 1);
                        at = next;
                    }
                    None => {}
                }
            }
            assert_eq!(
                fields.contains_key("lost_reason"),
                text(fields, "stage") == Some("lost")
            );
        }
    }
}
