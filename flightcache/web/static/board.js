// The live leaderboard: one websocket per (board, window); each push is the top 10.
// Text from the server goes in with textContent only.
"use strict";

const board = {
  socket: null,
  // every update shown, with the wall-clock time (ms) the page drew it: for measurement
  received: [],
  pushes: 0,

  connect() {
    if (board.socket) { board.socket.onclose = null; board.socket.close(); }
    const name = document.getElementById("board-name").value;
    const windowName = document.getElementById("board-window").value;
    const params = new URLSearchParams({ board: name, window: windowName });
    history.replaceState(null, "", `/board?${params}`);
    fc.text("board-status", "connecting…");
    const socket = fc.socket(`/ws/board?${params}`);
    board.socket = socket;
    socket.onopen = () => { fc.clear(); fc.text("board-status", "live"); };
    socket.onmessage = (message) => board.show(JSON.parse(message.data));
    socket.onclose = (event) => {
      fc.text("board-status", "closed");
      if (event.reason) fc.fail(event.reason);
      if (board.socket === socket && event.code !== 1008) {
        setTimeout(() => { if (board.socket === socket) board.connect(); }, 2000);
      }
    };
  },

  arrow(change) {
    if (change === null) return ["new", "board-new"];
    if (change > 0) return [`▲${change}`, "up"];
    if (change < 0) return [`▼${-change}`, "down"];
    return ["", ""];
  },

  show(snap) {
    const body = document.getElementById("board-rows");
    const rows = snap.rows.map((row) => {
      const tr = document.createElement("tr");
      const [text, cls] = board.arrow(row.change);
      const cells = [[String(row.rank), "num"], [text, `board-arrow ${cls}`],
                     [row.member, "board-member"], [row.score.toLocaleString(), "num"]];
      for (const [value, className] of cells) {
        const td = document.createElement("td");
        td.textContent = value;
        td.className = className;
        tr.appendChild(td);
      }
      tr.dataset.member = row.member;
      return tr;
    });
    body.replaceChildren(...rows);
    if (!snap.rows.length) {
      const tr = document.createElement("tr");
      const td = document.createElement("td");
      td.colSpan = 4;
      td.textContent = "the board is empty";
      tr.appendChild(td);
      body.appendChild(tr);
    }
    fc.text("board-key", snap.key);
    fc.text("board-rate-now", fc.trim(snap.events_per_s) || "0");
    fc.text("board-events", snap.events.toLocaleString());
    board.pushes += 1;
    document.getElementById("board-table").dataset.pushes = String(board.pushes);
    const at = performance.timeOrigin + performance.now();
    for (const u of snap.updates) board.received.push({ member: u.member, score: u.score, period: u.period, at });
    if (board.received.length > 20000) board.received.splice(0, 10000);
  },

  async simulator(action) {
    try {
      fc.clear();
      if (action === "start") {
        const rate = Number(document.getElementById("board-rate").value);
        const seconds = Number(document.getElementById("board-seconds").value);
        await fc.post("/board/simulate/start", { rate, seconds });
      } else {
        await fc.post("/board/simulate/stop");
      }
    } catch (e) { fc.fail(e); }
    board.status();
  },

  async status() {
    try {
      const s = await fc.get("/board/simulate");
      let text = s.running ? "running" : "idle";
      if (s.bookings !== undefined) {
        text += s.running ? `, ${s.bookings.toLocaleString()} bookings so far`
                          : ` (the last run here booked ${s.bookings.toLocaleString()})`;
      }
      if (s.error) text += `: ${s.error}`;
      fc.text("board-sim", text);
    } catch (e) { fc.text("board-sim", e.message); }
  },
};

(() => {
  const params = new URLSearchParams(location.search);
  for (const [key, id] of [["board", "board-name"], ["window", "board-window"]]) {
    const value = params.get(key);
    const select = document.getElementById(id);
    if (value && [...select.options].some((o) => o.value === value)) select.value = value;
  }
  document.getElementById("board-name").addEventListener("change", board.connect);
  document.getElementById("board-window").addEventListener("change", board.connect);
  document.getElementById("board-start").addEventListener("click", () => board.simulator("start"));
  document.getElementById("board-stop").addEventListener("click", () => board.simulator("stop"));
  board.connect();
  board.status();
  setInterval(board.status, 2000);
})();
