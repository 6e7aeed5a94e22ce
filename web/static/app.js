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
          var select = card.querySelector("form.move select");
          if (select) select.value = lane.dataset.value;
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

  document.documentElement.classList.add("js");
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll(".kanban").forEach(setupKanban);
    document.querySelectorAll("form[data-rules-url]").forEach(setupRules);
    var label = document.querySelector("[data-selected-count]");
    if (label) label.dataset.none = label.textContent;
    updateBulk();
    var firstInvalid = document.querySelector('[aria-invalid="true"]');
    if (firstInvalid) firstInvalid.focus();
  });
})();
