//! Funnel analysis from history: for the records of a report, how many reached each stage of
//! a pipeline (a single-select field whose options are the stages in order), the conversion
//! from each stage to the next, where the lost ones were lost and why, and how many days they
//! spent in each stage — all from the record history, so a deal lost at "proposal" still
//! counts as having reached "proposal".

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

/// Most records one funnel reads (their history included).
pub const MAX_RECORDS: usize = 20_000;

/// One stage of the pipeline as the entity defines it.
#[derive(Debug, Clone)]
pub struct StageOption {
    /// The stored value.
    pub value: String,
    /// Its labels.
    pub label: Value,
    /// Its colour.
    pub color: Option<String>,
}

/// A record taking a stage (or none) at an instant.
pub type Move = (DateTime<Utc>, Option<String>);

/// One record as the funnel sees it.
#[derive(Debug, Clone)]
pub struct Tracked {
    /// The record.
    pub id: Uuid,
    /// Its current stage.
    pub current: Option<String>,
    /// Why it was lost (when it is).
    pub reason: Option<String>,
    /// Its stage over time, oldest first: when it took each value (from its history).
    pub moves: Vec<Move>,
}

/// One stage of the result.
#[derive(Debug, Clone, Serialize)]
pub struct Stage {
    /// The stored value.
    pub value: String,
    /// Its labels.
    pub label: Value,
    /// Its colour.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    /// Records in this stage now.
    pub current: u64,
    /// Records that reached this stage or a later one at some time.
    pub reached: u64,
    /// `reached` here over `reached` at the stage before (`None` for the first, or after 0).
    pub conversion: Option<Decimal>,
    /// Records lost whose last stage before being lost was this one.
    pub lost_here: u64,
    /// Average days the records that were in this stage spent in it (ongoing stays count up
    /// to now).
    pub avg_days: Option<Decimal>,
    /// The filter listing the records in this stage now.
    pub filter: Value,
}

/// A lost reason and how many records it lost.
#[derive(Debug, Clone, Serialize)]
pub struct Reason {
    /// The stored value (`null`: no reason given).
    pub value: Value,
    /// Count.
    pub count: u64,
    /// Its labels.
    pub label: Value,
    /// Its colour.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    /// The filter listing the records it lost.
    pub filter: Value,
}

/// The analysis.
#[derive(Debug, Clone, Serialize)]
pub struct Funnel {
    /// The stages in order (the lost values left out).
    pub stages: Vec<Stage>,
    /// Records analysed.
    pub records: u64,
    /// Records lost now.
    pub lost: u64,
    /// Lost before reaching the first stage (no stage in their history).
    pub lost_before_first: u64,
    /// Lost reasons, most first.
    pub reasons: Vec<Reason>,
    /// The stage after which most records are lost (by count), if any are.
    pub most_lost_at: Option<String>,
    /// More records matched than the funnel reads.
    pub truncated: bool,
}

fn ratio(part: u64, whole: u64) -> Option<Decimal> {
    (whole > 0).then(|| Decimal::from(part) / Decimal::from(whole))
}

/// Analyses `records` over the pipeline `stages` (in order); `lost` names the values that
/// mean "lost". `now` closes stays still open.
pub fn analyse(
    stages: &[StageOption],
    lost: &[String],
    records: &[Tracked],
    now: DateTime<Utc>,
    truncated: bool,
) -> Funnel {
    let index: HashMap<&str, usize> = stages
        .iter()
        .enumerate()
        .map(|(i, s)| (s.value.as_str(), i))
        .collect();
    let n = stages.len();
    let mut current = vec![0u64; n];
    let mut reached_exact = vec![0u64; n];
    let mut lost_here = vec![0u64; n];
    let mut days = vec![Decimal::ZERO; n];
    let mut stayed = vec![0u64; n];
    let mut lost_count = 0u64;
    let mut lost_before_first = 0u64;
    let mut reasons: HashMap<Option<String>, u64> = HashMap::new();
    for record in records {
        let is_lost = record.current.as_ref().is_some_and(|c| lost.contains(c));
        if let Some(i) = record.current.as_deref().and_then(|c| index.get(c)) {
            current[*i] += 1;
        }
        // The furthest stage ever held, the last one before a loss, and the time in each.
        let mut furthest: Option<usize> = None;
        let mut last_stage: Option<usize> = None;
        let mut seen = vec![false; n];
        let mut time_in = vec![0i64; n];
        for (k, (at, value)) in record.moves.iter().enumerate() {
            let Some(i) = value.as_deref().and_then(|v| index.get(v)).copied() else {
                continue;
            };
            furthest = Some(furthest.map_or(i, |f| f.max(i)));
            last_stage = Some(i);
            seen[i] = true;
            let until = record.moves.get(k + 1).map_or(now, |(next, _)| *next);
            time_in[i] += (until - *at).num_seconds().max(0);
        }
        if let Some(f) = furthest {
            reached_exact[f] += 1;
        }
        for i in 0..n {
            if seen[i] {
                stayed[i] += 1;
                days[i] += Decimal::from(time_in[i]) / Decimal::from(86_400);
            }
        }
        if is_lost {
            lost_count += 1;
            *reasons.entry(record.reason.clone()).or_default() += 1;
            match last_stage {
                Some(i) => lost_here[i] += 1,
                None => lost_before_first += 1,
            }
        }
    }
    // Reaching a stage means reaching it or any later one.
    let mut reached = vec![0u64; n];
    let mut running = 0;
    for i in (0..n).rev() {
        running += reached_exact[i];
        reached[i] = running;
    }
    let out: Vec<Stage> = stages
        .iter()
        .enumerate()
        .map(|(i, s)| Stage {
            value: s.value.clone(),
            label: s.label.clone(),
            color: s.color.clone(),
            current: current[i],
            reached: reached[i],
            conversion: if i == 0 {
                None
            } else {
                ratio(reached[i], reached[i - 1])
            },
            lost_here: lost_here[i],
            filter: Value::Null,
            avg_days: (stayed[i] > 0).then(|| {
                let mut average = (days[i] / Decimal::from(stayed[i])).round_dp_with_strategy(
                    1,
                    rust_decimal::RoundingStrategy::MidpointAwayFromZero,
                );
                average.rescale(1);
                average
            }),
        })
        .collect();
    let most_lost_at = out
        .iter()
        .filter(|s| s.lost_here > 0)
        .max_by_key(|s| s.lost_here)
        .map(|s| s.value.clone());
    let mut reasons: Vec<Reason> = reasons
        .into_iter()
        .map(|(value, count)| Reason {
            value: value.map_or(Value::Null, Value::String),
            count,
            label: Value::Null,
            color: None,
            filter: Value::Null,
        })
        .collect();
    reasons.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then(a.value.to_string().cmp(&b.value.to_string()))
    });
    Funnel {
        stages: out,
        records: records.len() as u64,
        lost: lost_count,
        lost_before_first,
        reasons,
        most_lost_at,
        truncated,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    fn day(d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, 0, 0, 0)
            .single()
            .expect("date")
    }

    fn stages() -> Vec<StageOption> {
        ["lead", "qualified", "proposal", "won"]
            .iter()
            .map(|v| StageOption {
                value: (*v).to_owned(),
                label: json!({"en": v}),
                color: None,
            })
            .collect()
    }

    fn tracked(moves: &[(u32, &str)], reason: Option<&str>) -> Tracked {
        Tracked {
            id: Uuid::nil(),
            current: moves.last().map(|(_, s)| (*s).to_owned()),
            reason: reason.map(str::to_owned),
            moves: moves
                .iter()
                .map(|(d, s)| (day(*d), Some((*s).to_owned())))
                .collect(),
        }
    }

    /// Five deals by hand: one won, one lost at proposal (price), one lost at qualified
    /// (price), one still in proposal, one lost straight away (no reason).
    #[test]
    fn a_hand_made_pipeline_adds_up() {
        let records = vec![
            tracked(
                &[(1, "lead"), (3, "qualified"), (6, "proposal"), (10, "won")],
                None,
            ),
            tracked(
                &[(1, "lead"), (2, "qualified"), (4, "proposal"), (9, "lost")],
                Some("price"),
            ),
            tracked(&[(1, "lead"), (5, "qualified"), (7, "lost")], Some("price")),
            tracked(&[(2, "lead"), (4, "qualified"), (8, "proposal")], None),
            tracked(&[(3, "lost")], None),
        ];
        let funnel = analyse(&stages(), &["lost".to_owned()], &records, day(12), false);
        let reached: Vec<u64> = funnel.stages.iter().map(|s| s.reached).collect();
        assert_eq!(reached, [4, 4, 3, 1]);
        let current: Vec<u64> = funnel.stages.iter().map(|s| s.current).collect();
        assert_eq!(current, [0, 0, 1, 1]);
        let lost: Vec<u64> = funnel.stages.iter().map(|s| s.lost_here).collect();
        assert_eq!(lost, [0, 1, 1, 0]);
        assert_eq!(funnel.lost, 3);
        assert_eq!(funnel.lost_before_first, 1);
        assert_eq!(funnel.stages[2].conversion, Some(Decimal::new(75, 2)));
        assert_eq!(
            funnel.stages[3].conversion.map(|c| c.round_dp(4)),
            Some(Decimal::new(3333, 4))
        );
        assert_eq!(funnel.reasons[0].value, json!("price"));
        assert_eq!(funnel.reasons[0].count, 2);
        // Days in "lead": 2, 1, 4, 2 → 2.25; in "proposal": 4, 5, 4 (to now) → 4.3.
        assert_eq!(funnel.stages[0].avg_days, Some(Decimal::new(23, 1)));
        assert_eq!(funnel.stages[2].avg_days, Some(Decimal::new(43, 1)));
        // "won" is held until now: 2 days.
        assert_eq!(funnel.stages[3].avg_days, Some(Decimal::new(20, 1)));
        assert!(funnel.most_lost_at.is_some());
    }

    #[test]
    fn nothing_to_analyse_is_empty_not_a_division_by_zero() {
        let funnel = analyse(&stages(), &["lost".to_owned()], &[], day(12), false);
        assert!(
            funnel
                .stages
                .iter()
                .all(|s| s.reached == 0 && s.conversion.is_none())
        );
        assert_eq!(funnel.most_lost_at, None);
    }
}
