// The print page's one button: open the browser's print dialog (save as PDF from there).
document.addEventListener("click", function (event) {
  if (event.target.closest("[data-print]")) window.print();
});
