// The room page: every attendee's record, asked for every two seconds.
"use strict";

function ago(seconds, now) {
  if (seconds === null || seconds === undefined) return "never";
  const gone = Math.max(0, now - seconds);
  if (gone < 90) return `${Math.round(gone)} s ago`;
  if (gone < 90 * 60) return `${Math.round(gone / 60)} min ago`;
  return `${(gone / 3600).toFixed(1)} h ago`;
}

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  row.appendChild(td);
}

async function refresh() {
  try {
    const doc = await fc.get("/room/status");
    const body = document.getElementById("room-rows");
    body.replaceChildren();
    for (const a of doc.attendees) {
      const tr = document.createElement("tr");
      tr.dataset.attendee = a.attendee;
      cell(tr, a.ready ? a.attendee : `${a.attendee} (being added)`);
      cell(tr, ago(a.last_seen, doc.now));
      const exit = a.exit === null || a.exit === 0 ? "" : ` (exit ${a.exit})`;
      cell(tr, (a.command || "–") + exit, a.exit ? "bad" : "");
      cell(tr, a.chapter || "–");
      cell(tr, `${a.passed.length}/${doc.exercises}` + (a.passed.length ? `: ${a.passed.join(", ")}` : ""));
      const last = a.failed.length ? a.failed[0] : null;
      cell(tr, last ? `${a.failed.length}, last: ${last.command}: ${last.error}` : "–", last ? "bad" : "");
      body.appendChild(tr);
    }
    document.getElementById("room-empty").hidden = doc.attendees.length > 0;
    fc.text("room-updated", `Updated ${new Date(doc.now * 1000).toLocaleTimeString()}.`);
    fc.clear();
  } catch (error) {
    fc.fail(error);
  }
}

refresh();
setInterval(refresh, 2000);
