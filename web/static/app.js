// Formwork's little JavaScript: progressive enhancements only; every page works without it.
// Kanban drag and drop, bulk selection, confirmations, submit-once forms, auto-submitting selects.
(function () {
  "use strict";
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  function toast(message, isError) {
    var box = document.getElementById("toast");
    if (!box) return;
    box.textContent = message;
    box.className = "toast" + (isError ? " error" : "");
    box.hidden = false;
    clearTimeout(box._timer);
    box._timer = setTimeout(function () { box.hidden = true; }, isError ? 8000 : 3000);
  }

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.matches("input[type=file][data-upload]")) upload(target);
    if (target.matches("select[data-autosubmit]") && target.form) target.form.submit();
    if (target.matches("[data-select-all]")) {
      document.querySelectorAll('#bulk-form input[name="id"]').forEach(function (box) { box.checked = target.checked; });
    }
    if (target.closest("#bulk-form")) updateBulk();
  });

  function updateBulk() {
    var form = document.getElementById("bulk-form");
    if (!form) return;
    var count = form.querySelectorAll('input[name="id"]:checked').length;
    var label = form.querySelector("[data-selected-count]");
    if (label) label.textContent = count ? label.dataset.template.replace("{n}", count) : label.dataset.none;
    form.querySelectorAll("[data-needs-selection]").forEach(function (button) { button.disabled = count === 0; });
  }

  document.addEventListener("click", function (event) {
    var confirmer = event.target.closest("[data-confirm]");
    if (confirmer && !window.confirm(confirmer.getAttribute("data-confirm"))) event.preventDefault();
  });

  // A form is sent once: a second click while the first is on its way does nothing (the
  // server's idempotency token covers what gets through anyway).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches("form[data-once]")) return;
    if (form.dataset.sent) { event.preventDefault(); return; }
    form.dataset.sent = "1";
    setTimeout(function () { delete form.dataset.sent; }, 10000);
  });

  // Kanban: drag a card to another lane; the server applies the same validation and workflows
  // as any edit, and a refusal puts the card back with the reason.
  function setupKanban(board) {
    var field = board.dataset.field;
    var base = board.dataset.setBase;
    var dragged = null;
    board.addEventListener("dragstart", function (event) {
      var card = event.target.closest(".card-item");
      if (!card || card.getAttribute("draggable") !== "true") return;
      dragged = card;
      card.classList.add("dragging");
      event.dataTransfer.effectAllowed = "move";
      event.dataTransfer.setData("text/plain", card.dataset.id);
    });
    board.addEventListener("dragend", function () {
      if (dragged) dragged.classList.remove("dragging");
      board.querySelectorAll(".lane.over").forEach(function (lane) { lane.classList.remove("over"); });
    });
    board.addEventListener("dragover", function (event) {
      var lane = event.target.closest(".lane");
      if (!lane || !dragged) return;
      event.preventDefault();
      lane.classList.add("over");
    });
    board.addEventListener("dragleave", function (event) {
      var lane = event.target.closest(".lane");
      if (lane && !lane.contains(event.relatedTarget)) lane.classList.remove("over");
    });
    board.addEventListener("drop", function (event) {
      var lane = event.target.closest(".lane");
      if (!lane || !dragged) return;
      event.preventDefault();
      lane.classList.remove("over");
      var card = dragged;
      dragged = null;
      var from = card.closest(".lane");
      if (from === lane) return;
      move(card, from, lane);
    });

    function move(card, from, lane) {
      var list = lane.querySelector(".cards");
      list.insertBefore(card, list.firstChild);
      recount();
      card.classList.add("saving");
      var body = new URLSearchParams();
      body.set("csrf_token", csrf);
      body.set("field", field);
      body.set("value", lane.dataset.value);
      body.set("version", card.dataset.version);
      fetch(base + "/" + card.dataset.id + "/set", {
        method: "POST",
        headers: { "X-Requested-With": "fetch", "Content-Type": "application/x-www-form-urlencoded" },
        body: body,
        credentials: "same-origin"
      }).then(function (response) {
        return response.json().then(function (data) { return { ok: response.ok, data: data }; });
      }).then(function (result) {
        card.classList.remove("saving");
        if (result.ok) {
          card.dataset.version = result.data.version;
          var version = card.querySelector('form.move input[name="version"]');
          if (version) version.value = result.data.version;
          card.classList.add("moved");
          toast(board.dataset.saved);
        } else {
          from.querySelector(".cards").insertBefore(card, from.querySelector(".cards").firstChild);
          recount();
          toast(result.data.message || board.dataset.networkError, true);
        }
      }).catch(function () {
        card.classList.remove("saving");
        from.querySelector(".cards").insertBefore(card, from.querySelector(".cards").firstChild);
        recount();
        toast(board.dataset.networkError, true);
      });
    }

    function recount() {
      board.querySelectorAll(".lane").forEach(function (lane) {
        var count = lane.querySelector(".lane-count");
        if (count) count.textContent = lane.querySelectorAll(".card-item").length;
      });
    }
  }

  // Form rules (visible_when, readonly_when) are decided on the server; as the person types,
  // the page asks again (debounced) and shows, hides, enables and disables fields.
  function setupRules(form) {
    var url = form.dataset.rulesUrl;
    var timer = null;
    var asked = 0;
    function ask() {
      var body = new URLSearchParams(new FormData(form));
      body.set("csrf_token", csrf);
      if (form.dataset.record) body.set("_record", form.dataset.record);
      var mine = ++asked;
      fetch(url, {
        method: "POST",
        headers: { "X-Requested-With": "fetch", "Content-Type": "application/x-www-form-urlencoded" },
        body: body,
        credentials: "same-origin"
      }).then(function (response) { return response.ok ? response.json() : null; })
        .then(function (state) {
          if (!state || mine !== asked) return;
          form.querySelectorAll(".field[data-field]").forEach(function (field) {
            var key = field.dataset.field;
            field.hidden = state.hidden.indexOf(key) >= 0;
            var locked = state.readonly.indexOf(key) >= 0;
            field.classList.toggle("ruled-readonly", locked);
            field.querySelectorAll("input:not([type=hidden]), select, textarea").forEach(function (input) {
              input.disabled = locked;
            });
          });
        }).catch(function () { /* the server decides again on save */ });
    }
    form.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(ask, 300); });
    form.addEventListener("change", function () { clearTimeout(timer); timer = setTimeout(ask, 150); });
  }

  // Attachments: each chosen file is uploaded at once (with progress) and listed, ticked, in
  // the field; the record takes the ticked files when the form is saved.
  function upload(input) {
    var list = input.parentNode.querySelector('[data-files="' + input.dataset.field + '"]');
    var bar = input.parentNode.querySelector(".upload-progress");
    Array.prototype.forEach.call(input.files, function (file) {
      var request = new XMLHttpRequest();
      request.open("POST", input.dataset.upload + "&name=" + encodeURIComponent(file.name));
      request.setRequestHeader("X-CSRF-Token", csrf);
      request.setRequestHeader("Content-Type", file.type || "application/octet-stream");
      if (bar) { bar.hidden = false; bar.value = 0; }
      request.upload.onprogress = function (event) {
        if (bar && event.lengthComputable) bar.value = Math.round(100 * event.loaded / event.total);
      };
      request.onload = function () {
        if (bar) bar.hidden = true;
        var body = {};
        try { body = JSON.parse(request.responseText); } catch (e) { body = {}; }
        if (request.status === 201) {
          var item = document.createElement("li");
          var label = document.createElement("label");
          label.className = "check";
          var box = document.createElement("input");
          box.type = "checkbox"; box.name = input.dataset.field; box.value = body.id; box.checked = true;
          label.appendChild(box);
          label.appendChild(document.createTextNode(" " + body.name));
          item.appendChild(label);
          list.appendChild(item);
        } else {
          var reason = (body.errors && body.errors[0] && body.errors[0].message) || body.detail || request.status;
          toast(input.dataset.failed + ": " + file.name + " — " + reason, true);
        }
      };
      request.onerror = function () { if (bar) bar.hidden = true; toast(input.dataset.failed + ": " + file.name, true); };
      request.send(file);
    });
    input.value = "";
  }

  // Sub-tables: add, remove and reorder rows; totals follow what is typed (the server keeps
  // the exact ones when the record is saved).
  function renumber(table) {
    var key = table.dataset.subtable;
    table.querySelectorAll("tbody tr").forEach(function (row, index) {
      row.querySelectorAll("[name]").forEach(function (input) {
        var parts = input.name.split(".");
        if (parts.length === 3 && parts[0] === key) input.name = key + "." + index + "." + parts[2];
      });
    });
  }
  function number(text) {
    var cleaned = String(text).replace(/[,\s¥$€£]/g, "");
    return cleaned === "" ? null : Number(cleaned);
  }
  function retotal(table) {
    table.querySelectorAll("tfoot [data-total]").forEach(function (cell) {
      var op = cell.dataset.op;
      if (!op) return;
      var values = [];
      table.querySelectorAll('tbody [data-col="' + cell.dataset.total + '"]').forEach(function (input) {
        var n = number(input.value);
        if (n !== null && !isNaN(n)) values.push(n);
      });
      var result = null;
      if (op === "count") result = values.length;
      else if (values.length) {
        if (op === "sum" || op === "avg") {
          result = values.reduce(function (a, b) { return a + b; }, 0);
          if (op === "avg") result = result / values.length;
        } else if (op === "min") result = Math.min.apply(null, values);
        else if (op === "max") result = Math.max.apply(null, values);
      }
      cell.textContent = result === null ? "" : result.toLocaleString(document.documentElement.lang, { maximumFractionDigits: 2 });
    });
  }
  document.addEventListener("click", function (event) {
    var table = event.target.closest("[data-subtable]");
    if (!table) return;
    var row = event.target.closest("tr");
    if (event.target.closest("[data-add-row]")) {
      var template = table.querySelector("template[data-row]");
      var body = table.querySelector("tbody");
      var holder = document.createElement("tbody");
      holder.innerHTML = template.innerHTML.split("__i__").join(String(body.rows.length));
      body.appendChild(holder.firstElementChild);
    } else if (event.target.closest("[data-remove-row]") && row) {
      row.parentNode.removeChild(row);
    } else if (event.target.closest("[data-move]") && row) {
      var step = Number(event.target.closest("[data-move]").dataset.move);
      var other = step < 0 ? row.previousElementSibling : row.nextElementSibling;
      if (other) row.parentNode.insertBefore(step < 0 ? row : other, step < 0 ? other : row);
    } else {
      return;
    }
    renumber(table);
    retotal(table);
  });
  document.addEventListener("input", function (event) {
    var table = event.target.closest("[data-subtable]");
    if (table) retotal(table);
  });

  // Pickers: a search box above a reference or member select. References ask the server (it
  // searches the records the person may read); members are filtered in place.
  function setupPicker(search) {
    var select = document.getElementById(search.dataset.for);
    if (!select) return;
    search.hidden = false;
    var all = Array.prototype.map.call(select.options, function (o) { return { value: o.value, label: o.text }; });
    var timer = null;
    function show(list) {
      var chosen = select.value;
      var chosenLabel = select.options[select.selectedIndex] ? select.options[select.selectedIndex].text : "";
      while (select.options.length) select.remove(0);
      select.add(new Option(all.length ? all[0].label : "", ""));
      var seen = false;
      list.forEach(function (item) {
        if (!item.value) return;
        var option = new Option(item.label, item.value, false, item.value === chosen);
        if (item.value === chosen) seen = true;
        select.add(option);
      });
      if (chosen && !seen) select.add(new Option(chosenLabel, chosen, true, true));
    }
    search.addEventListener("input", function () {
      clearTimeout(timer);
      var q = search.value.trim();
      timer = setTimeout(function () {
        if (!search.dataset.lookup) {
          var needle = q.toLowerCase();
          show(all.filter(function (o) { return o.label.toLowerCase().indexOf(needle) >= 0; }));
          return;
        }
        fetch(search.dataset.lookup + "?q=" + encodeURIComponent(q), { credentials: "same-origin" })
          .then(function (response) { return response.ok ? response.json() : []; })
          .then(function (found) {
            show(found.map(function (r) { return { value: r.id, label: r.title }; }));
          }).catch(function () { /* keep the list as it is */ });
      }, 250);
    });
  }

  // Select options' colours shown beside the select (an <option> cannot be coloured reliably).
  function setupSwatch(select) {
    var swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.setAttribute("aria-hidden", "true");
    select.parentNode.insertBefore(swatch, select);
    function paint() {
      var option = select.options[select.selectedIndex];
      var color = option && option.dataset.color;
      swatch.style.background = color || "transparent";
      swatch.style.borderColor = color || "var(--line-strong)";
    }
    select.addEventListener("change", paint);
    paint();
  }

  // The entity designer: drag fields into a new order (posted as one reorder, with the page's
  // revision, so a concurrent change is refused rather than lost).
  function setupFieldList(list) {
    var dragged = null;
    list.addEventListener("dragstart", function (event) {
      dragged = event.target.closest("li[data-key]");
      if (dragged) { dragged.classList.add("dragging"); event.dataTransfer.effectAllowed = "move"; }
    });
    list.addEventListener("dragover", function (event) {
      if (!dragged) return;
      event.preventDefault();
      var over = event.target.closest("li[data-key]");
      if (!over || over === dragged) return;
      var box = over.getBoundingClientRect();
      list.insertBefore(dragged, event.clientY < box.top + box.height / 2 ? over : over.nextSibling);
    });
    list.addEventListener("dragend", function () {
      if (!dragged) return;
      dragged.classList.remove("dragging");
      dragged = null;
      var order = Array.prototype.map.call(list.querySelectorAll("li[data-key]"), function (li) { return li.dataset.key; });
      var form = document.createElement("form");
      form.method = "post";
      form.action = list.dataset.reorder;
      [["csrf_token", csrf], ["revision", list.dataset.revision], ["op", "reorder"], ["order", order.join(",")]].forEach(function (pair) {
        var input = document.createElement("input");
        input.type = "hidden"; input.name = pair[0]; input.value = pair[1];
        form.appendChild(input);
      });
      document.body.appendChild(form);
      form.submit();
    });
  }

  function postForm(action, pairs) {
    var form = document.createElement("form");
    form.method = "post";
    form.action = action;
    pairs.forEach(function (pair) {
      var input = document.createElement("input");
      input.type = "hidden"; input.name = pair[0]; input.value = pair[1];
      form.appendChild(input);
    });
    document.body.appendChild(form);
    form.submit();
  }

  // The form builder: drag fields from the palette into sections, between sections and within
  // one; the resulting layout is posted whole (fields dragged back to the palette leave the form).
  function setupFormBuilder(box) {
    var dragged = null;
    box.addEventListener("dragstart", function (event) {
      dragged = event.target.closest("li[data-key]");
      if (dragged) { dragged.classList.add("dragging"); event.dataTransfer.effectAllowed = "move"; }
    });
    box.addEventListener("dragover", function (event) {
      if (!dragged) return;
      var list = event.target.closest("[data-section]");
      if (!list) return;
      event.preventDefault();
      var over = event.target.closest("li[data-key]");
      if (over && over !== dragged && over.parentNode === list) {
        var rect = over.getBoundingClientRect();
        list.insertBefore(dragged, event.clientY < rect.top + rect.height / 2 ? over : over.nextSibling);
      } else if (!over) {
        list.appendChild(dragged);
      }
    });
    box.addEventListener("dragend", function () {
      if (!dragged) return;
      dragged.classList.remove("dragging");
      dragged = null;
      var layout = Array.prototype.map.call(box.querySelectorAll("[data-section]:not([data-section=palette])"), function (list) {
        return Array.prototype.map.call(list.querySelectorAll("li[data-key]"), function (li) { return li.dataset.key; });
      });
      postForm(box.dataset.arrange, [["csrf_token", csrf], ["revision", box.dataset.revision], ["op", "arrange"], ["layout", JSON.stringify(layout)]]);
    });
  }

  // The formula editor: fields and functions insert at the cursor; the formula is checked while
  // typing (line:column of any problem) and tried on a chosen record.
  function setupFormulaEditor(box) {
    var area = box.querySelector("textarea[name=formula]");
    var status = box.querySelector("[data-testid=formula-status]");
    var result = box.closest("form").querySelector("select[name=result]");
    var record = box.querySelector("select[name=test_record]");
    var timer = null;
    function check() {
      var body = { field: box.dataset.field || "", formula: area.value, result: result ? result.value : "", record_id: record ? record.value : "" };
      fetch(box.dataset.check, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify(body)
      }).then(function (response) { return response.json(); }).then(function (answer) {
        if (answer.problems && answer.problems.length) {
          status.className = "small error";
          status.textContent = answer.problems.map(function (p) {
            return (p.line ? p.line + ":" + p.column + " " : "") + p.message;
          }).join(" · ");
        } else {
          status.className = "small ok";
          var run = answer.value || {};
          status.textContent = status.dataset.ok + " " + status.dataset.gives + " " + JSON.stringify(run.result) + (run.type ? " (" + run.type + ")" : "");
        }
      }).catch(function () { status.textContent = ""; });
    }
    area.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(check, 400); });
    if (result) result.addEventListener("change", check);
    box.querySelectorAll("[data-insert]").forEach(function (button) {
      button.addEventListener("click", function () {
        var text = button.dataset.insert;
        var start = area.selectionStart, end = area.selectionEnd;
        area.value = area.value.slice(0, start) + text + area.value.slice(end);
        area.focus();
        area.selectionStart = area.selectionEnd = start + text.length;
        clearTimeout(timer); timer = setTimeout(check, 200);
      });
    });
    var tryButton = box.querySelector("[data-test-formula]");
    if (tryButton) tryButton.addEventListener("click", check);
  }

  // The field editor shows the settings of the chosen kind only (all of them without script).
  function setupFieldEditor(form) {
    var select = form.querySelector("[data-kind-select]");
    function show() {
      var kind = select ? select.value : form.dataset.kind;
      form.querySelectorAll("[data-for-kinds]").forEach(function (part) {
        part.hidden = part.dataset.forKinds.split(" ").indexOf(kind) < 0;
      });
    }
    if (select) select.addEventListener("change", show);
    show();
  }

  // The workflow designer's message preview: the typed texts rendered with a chosen record.
  function setupMessagePreview(box) {
    var form = box.closest("form");
    var out = box.querySelector("[data-testid=message-preview]");
    var record = box.querySelector("select[name=preview_record]");
    box.querySelector("[data-preview-button]").addEventListener("click", function () {
      var texts = {};
      form.querySelectorAll("[data-preview-text]").forEach(function (input) {
        texts[input.dataset.previewText] = input.value;
      });
      fetch(box.dataset.messagePreview, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify({ texts: texts, record_id: record ? record.value : "" })
      }).then(function (response) { return response.json(); }).then(function (answer) {
        out.textContent = "";
        (answer.problems || []).forEach(function (p) {
          var line = document.createElement("p");
          line.className = "error-text";
          line.textContent = (p.pointer || "") + " " + (p.line ? p.line + ":" + p.column + " " : "") + p.message;
          out.appendChild(line);
        });
        Object.keys(answer.rendered || {}).forEach(function (name) {
          var message = document.createElement("div");
          message.className = "message";
          message.dataset.name = name;
          var label = document.createElement("span");
          label.className = "muted small";
          label.textContent = name + ": ";
          message.appendChild(label);
          message.appendChild(document.createTextNode(answer.rendered[name]));
          out.appendChild(message);
        });
      }).catch(function () { out.textContent = ""; });
    });
  }

  // Mentions: typing "@" and a few letters in a comment offers the people and teams who can
  // read the record; picking one inserts its token @[name](user:id), drawn as "@name".
  function setupMentions(area) {
    var list = document.createElement("ul");
    list.className = "mention-list";
    list.setAttribute("role", "listbox");
    list.hidden = true;
    area.parentNode.insertBefore(list, area.nextSibling);
    var timer = null;
    var asked = 0;
    function query() {
      var before = area.value.slice(0, area.selectionStart);
      var match = /(^|\s)@([^\s@\[\]()]{0,30})$/.exec(before);
      return match ? { text: match[2], start: before.length - match[2].length - 1 } : null;
    }
    function close() { list.hidden = true; list.innerHTML = ""; }
    function pick(item, at) {
      var token = "@[" + item.name.replace(/[\[\]]/g, " ") + "](" + item.kind + ":" + item.id + ") ";
      var end = area.selectionStart;
      area.value = area.value.slice(0, at.start) + token + area.value.slice(end);
      var caret = at.start + token.length;
      area.setSelectionRange(caret, caret);
      close();
      area.focus();
    }
    area.addEventListener("input", function () {
      var at = query();
      clearTimeout(timer);
      if (!at) { close(); return; }
      timer = setTimeout(function () {
        var mine = ++asked;
        fetch(area.dataset.mentions + "?q=" + encodeURIComponent(at.text), { credentials: "same-origin" })
          .then(function (response) { return response.ok ? response.json() : []; })
          .then(function (found) {
            if (mine !== asked) return;
            list.innerHTML = "";
            found.forEach(function (item) {
              var option = document.createElement("li");
              option.setAttribute("role", "option");
              option.tabIndex = -1;
              option.dataset.mentionId = item.id;
              option.textContent = (item.kind === "team" ? "👥 " : "@") + item.name;
              var detail = document.createElement("span");
              detail.className = "muted small";
              detail.textContent = " " + item.detail;
              option.appendChild(detail);
              option.addEventListener("mousedown", function (event) { event.preventDefault(); pick(item, at); });
              list.appendChild(option);
            });
            list.hidden = found.length === 0;
          }).catch(close);
      }, 150);
    });
    area.addEventListener("keydown", function (event) {
      if (list.hidden) return;
      if (event.key === "Escape") { close(); return; }
      if (event.key === "Enter" || event.key === "Tab") {
        var first = list.querySelector("li");
        var at = query();
        if (first && at) {
          event.preventDefault();
          first.dispatchEvent(new MouseEvent("mousedown", { bubbles: true, cancelable: true }));
        }
      }
    });
    area.addEventListener("blur", function () { setTimeout(close, 200); });
  }

  // Calendar: drag a record to another day; the server reschedules it as an edit (same
  // validation and workflows) and a refusal puts it back with the reason.
  function setupCalendar(calendar) {
    var base = calendar.dataset.rescheduleBase;
    var field = calendar.dataset.field;
    var dragged = null;
    calendar.addEventListener("dragstart", function (event) {
      var item = event.target.closest(".cal-event");
      if (!item || item.getAttribute("draggable") !== "true") return;
      dragged = item;
      item.classList.add("dragging");
      if (event.dataTransfer) {
        event.dataTransfer.effectAllowed = "move";
        event.dataTransfer.setData("text/plain", item.dataset.id);
      }
    });
    calendar.addEventListener("dragend", function () {
      calendar.querySelectorAll(".cal-event.dragging").forEach(function (e) { e.classList.remove("dragging"); });
      calendar.querySelectorAll(".cal-day.over").forEach(function (d) { d.classList.remove("over"); });
    });
    calendar.addEventListener("dragover", function (event) {
      var day = event.target.closest(".cal-day");
      if (!day || !dragged) return;
      event.preventDefault();
      calendar.querySelectorAll(".cal-day.over").forEach(function (d) { if (d !== day) d.classList.remove("over"); });
      day.classList.add("over");
    });
    calendar.addEventListener("drop", function (event) {
      var day = event.target.closest(".cal-day");
      if (!day || !dragged) return;
      event.preventDefault();
      day.classList.remove("over");
      var item = dragged;
      dragged = null;
      var from = item.closest(".cal-day");
      if (from === day) return;
      var list = day.querySelector(".cal-events");
      list.appendChild(item);
      var body = new URLSearchParams();
      body.set("csrf_token", csrf);
      body.set("field", field);
      body.set("date", day.dataset.date);
      body.set("version", item.dataset.version);
      fetch(base + "/" + item.dataset.id + "/reschedule", {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-Requested-With": "fetch", "Content-Type": "application/x-www-form-urlencoded" },
        body: body.toString()
      }).then(function (response) {
        return response.json().then(function (answer) { return { ok: response.ok, answer: answer }; });
      }).then(function (result) {
        if (result.ok) {
          item.dataset.version = result.answer.version;
          toast(calendar.dataset.saved);
        } else {
          from.querySelector(".cal-events").appendChild(item);
          toast(result.answer.message || calendar.dataset.networkError, true);
        }
      }).catch(function () {
        from.querySelector(".cal-events").appendChild(item);
        toast(calendar.dataset.networkError, true);
      });
    });
  }

  document.documentElement.classList.add("js");
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll(".kanban").forEach(setupKanban);
    document.querySelectorAll("form[data-rules-url]").forEach(setupRules);
    document.querySelectorAll("input.picker-search[data-for]").forEach(setupPicker);
    document.querySelectorAll("select[data-colored]").forEach(setupSwatch);
    document.querySelectorAll("ol[data-reorder]").forEach(setupFieldList);
    document.querySelectorAll("form.field-editor").forEach(setupFieldEditor);
    document.querySelectorAll("[data-message-preview]").forEach(setupMessagePreview);
    document.querySelectorAll(".form-builder[data-arrange]").forEach(setupFormBuilder);
    document.querySelectorAll("fieldset.formula-editor[data-check]").forEach(setupFormulaEditor);
    document.querySelectorAll("textarea[data-mentions]").forEach(setupMentions);
    document.querySelectorAll(".calendar[data-reschedule-base]").forEach(setupCalendar);
    // A page following background work refreshes its part while something runs.
    document.querySelectorAll("[data-live]").forEach(function (box) {
      var every = Number(box.dataset.live) || 3000;
      (function poll() {
        setTimeout(function () {
          fetch(window.location.href, { credentials: "same-origin" })
            .then(function (response) { return response.text(); })
            .then(function (html) {
              var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(box.id);
              if (!fresh) return;
              box.innerHTML = fresh.innerHTML;
              if (fresh.dataset.live) poll();
              // The work ended: the rest of the page (forms offered now) is drawn again.
              else if (box.dataset.reloadWhenDone) window.location.reload();
            }).catch(poll);
        }, every);
      })();
    });
    var label = document.querySelector("[data-selected-count]");
    if (label) label.dataset.none = label.textContent;
    updateBulk();
    var firstInvalid = document.querySelector('[aria-invalid="true"]');
    if (firstInvalid) firstInvalid.focus();
  });
})();
