"use strict";
// The shared header's clock and spinner; openDialog/closeDialog for the modal dialogs.
document.querySelectorAll(".clock").forEach(startClock);
document.querySelectorAll(".spin").forEach(startSpinner);
function openDialog(id) { document.getElementById(id).showModal(); }
function closeDialog(id) { document.getElementById(id).close(); }
document.querySelectorAll("[data-open]").forEach((b) => b.addEventListener("click", () => openDialog(b.dataset.open)));
document.querySelectorAll("dialog [data-close]").forEach((b) =>
  b.addEventListener("click", () => b.closest("dialog").close()));
