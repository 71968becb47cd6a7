// The sessions page: the session hash as Valkey holds it, read every second from
// /sessions/state (a read that does not slide the expiry), and the countdown to the
// session's end. The forms themselves are plain HTML forms: they work without this.
"use strict";

(() => {
  const panel = document.getElementById("ses-valkey");
  if (!panel) return; // the login form: nothing to watch yet

  let pttl = Number(document.getElementById("ses-countdown").dataset.pttl);
  let readAt = performance.now();
  let ended = false;

  const clock = (ms) => {
    if (ms === null || ms === undefined || ms < 0) return "–";
    const s = Math.ceil(ms / 1000);
    return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  };

  const end = () => {
    if (ended) return;
    ended = true;
    location.assign("/sessions/"); // the server redirects to the login with a message
  };

  const tick = () => {
    const left = pttl - (performance.now() - readAt);
    fc.text("ses-countdown", clock(Math.max(0, left)));
    fc.text("ses-pttl", `${Math.max(0, Math.round(left)).toLocaleString("en")} ms (${clock(Math.max(0, left))})`);
    if (left <= 0) end();
  };

  const show = (state) => {
    pttl = state.pttl_ms;
    readAt = performance.now();
    fc.text("ses-key", state.key);
    fc.text("ses-hold-pttl", state.hold_pttl_ms === null ? "no per-field expiry here"
      : state.hold_pttl_ms === -2 ? "-2 (no hold)" : `${state.hold_pttl_ms.toLocaleString("en")} ms`);
    fc.text("ses-day-key", state.day_key);
    fc.text("ses-day-count", String(state.day_count));
    const body = document.getElementById("ses-hash");
    const rows = state.fields.map(([name, value]) => {
      const tr = document.createElement("tr");
      const th = document.createElement("td");
      const td = document.createElement("td");
      th.textContent = name;
      td.textContent = value;
      tr.dataset.field = name;
      tr.append(th, td);
      return tr;
    });
    body.replaceChildren(...rows);
    tick();
  };

  const read = async () => {
    try {
      show(await fc.get("/sessions/state"));
      fc.clear();
    } catch (error) {
      if (error.status === 401) end();
      else fc.fail(error);
    }
  };

  read();
  setInterval(read, 1000);
  setInterval(tick, 250);
})();
