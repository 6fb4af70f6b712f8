// The site's script (fingerprinted like the stylesheet): shows the visitor's local time.
"use strict";
(function () {
  var clock = document.getElementById("clock");
  if (!clock) {
    return;
  }
  function tick() {
    clock.textContent = new Date().toLocaleTimeString();
  }
  tick();
  setInterval(tick, 1000);
})();
