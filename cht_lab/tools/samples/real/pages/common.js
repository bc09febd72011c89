// Shared by the pages: a ticking clock, corner toasts and a spinner (the distractors that move by themselves).
"use strict";

function startClock(el) {
  const tick = () => {
    const d = new Date();
    el.textContent = d.toTimeString().slice(0, 8);
    setTimeout(tick, 1000 - d.getMilliseconds() + 5);  // on the second, like a real clock
  };
  tick();
}

// toast(text, ms): a notification slides into the bottom-right corner and leaves after `ms`.
function toast(text, ms = 2500, icon = "i") {
  let box = document.getElementById("toasts");
  if (!box) {
    box = document.createElement("div");
    box.id = "toasts";
    document.body.appendChild(box);
  }
  const t = document.createElement("div");
  t.className = "toast";
  t.innerHTML = `<span class="toast-icon">${icon}</span><span>${text}</span>`;
  box.appendChild(t);
  requestAnimationFrame(() => requestAnimationFrame(() => t.classList.add("shown")));
  setTimeout(() => { t.classList.remove("shown"); setTimeout(() => t.remove(), 400); }, ms);
}

function startSpinner(el) {
  el.classList.add("spinner");
}
