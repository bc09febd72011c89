"use strict";
// The deck: go(n) shows slide n with the transition its section names (none, fade, wipe, push).
const slides = [...document.querySelectorAll(".slide")];
let current = 0;
let transitioning = false;  // the script waits for this to clear before it goes on
slides[0].classList.add("active");
const DURATION = { fade: 1100, wipe: 1000, push: 900 };

function go(n) {
  if (n < 0 || n >= slides.length || n === current) return;
  const from = slides[current], to = slides[n];
  const kind = to.dataset.transition || "none";
  current = n;
  transitioning = true;
  document.getElementById("counter").textContent = `${n + 1} / ${slides.length}`;
  to.classList.add("active");
  to.style.zIndex = 2; from.style.zIndex = 1;
  const done = () => {
    from.classList.remove("active");
    from.style.zIndex = to.style.zIndex = "";
    transitioning = false;
  };
  const opts = { duration: DURATION[kind], easing: "ease-in-out" };
  if (kind === "fade") {
    to.animate([{ opacity: 0 }, { opacity: 1 }], opts).finished.then(done);
  } else if (kind === "wipe") {
    to.animate([{ clipPath: "inset(0 100% 0 0)" }, { clipPath: "inset(0 0 0 0)" }], opts).finished.then(done);
  } else if (kind === "push") {
    const o = { duration: DURATION.push, easing: "cubic-bezier(.2,.7,.2,1)" };
    from.animate([{ transform: "translateX(0)" }, { transform: "translateX(-100%)" }], o);
    to.animate([{ transform: "translateX(100%)" }, { transform: "translateX(0)" }], o).finished.then(done);
  } else {
    done();
  }
}

// a presenter's clicker sends PageDown/PageUp (it works while the notes have the focus); arrows and a
// click on the slide work too
document.addEventListener("keydown", (e) => {
  const typing = e.target.tagName === "TEXTAREA";
  if (e.key === "PageDown" || (!typing && e.key === "ArrowRight")) { e.preventDefault(); go(current + 1); }
  if (e.key === "PageUp" || (!typing && e.key === "ArrowLeft")) { e.preventDefault(); go(current - 1); }
});
document.getElementById("stage").addEventListener("click", () => go(current + 1));
startClock(document.getElementById("clock"));
startSpinner(document.getElementById("spin"));
