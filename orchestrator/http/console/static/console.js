// Times: the page carries UTC; show them in the viewer's time zone (the UTC time stays in the tooltip).
(function () {
  function localise(root) {
    var fmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      if (el.dataset.localised) return;
      var d = new Date(el.getAttribute("datetime"));
      if (!isNaN(d)) { el.textContent = fmt.format(d); el.dataset.localised = "1"; }
    });
  }
  document.addEventListener("DOMContentLoaded", function () { localise(document); });
  document.addEventListener("htmx:after:swap", function () { localise(document); });
  document.addEventListener("htmx:afterSwap", function () { localise(document); });
})();
