// The cache lab: runs a named query on the database and through cache-aside, streams
// the server's timings (one JSON line per round) into a uPlot chart, counts the key's
// TTL down. Every figure comes from the server; this script only draws them.
"use strict";

const lab = {
  info: null,
  key: null,
  expiresAt: null, // performance.now() when the key expires; null: no countdown
  pttl: null, // the last PTTL the server gave (-2: gone, -1: no TTL)
  running: null, // the AbortController of the run in progress
  chart: null,
  data: [[], [], [], [], [], [], []], // x, db, cache, db p50, db p99, cache p50, cache p99
  hits: 0,
  firstChartMs: null, // performance.now() when the first chart with data was drawn
};
window.fcLab = lab;

const $ = (id) => document.getElementById(id);

function showParams() {
  const holder = $("lab-params");
  holder.replaceChildren();
  const query = lab.info.queries.find((q) => q.name === $("lab-query").value);
  $("lab-title").textContent = query ? query.title : "";
  for (const param of query ? query.params : []) {
    const label = document.createElement("label");
    label.append(document.createTextNode(`${param.name} `));
    const input = document.createElement("input");
    input.type = "text";
    input.size = param.kind === "text" ? 5 : 11;
    input.value = param.default;
    input.title = param.help;
    input.dataset.param = param.name;
    label.append(input);
    holder.append(label);
  }
}

function request() {
  const params = {};
  for (const input of $("lab-params").querySelectorAll("input")) params[input.dataset.param] = input.value;
  return {
    query: $("lab-query").value,
    params,
    runs: Number($("lab-runs").value),
    ttl: Number($("lab-ttl-input").value),
  };
}

function busy(on) {
  $("lab-run").disabled = on;
  $("lab-stop").disabled = !on;
}

function setTtl(pttl) {
  lab.pttl = pttl;
  lab.expiresAt = pttl >= 0 ? performance.now() + pttl : null;
  tick();
}

function tick() {
  let text = "–";
  if (lab.expiresAt !== null) {
    const left = lab.expiresAt - performance.now();
    text = left > 0 ? `${(left / 1000).toFixed(1)} s` : "expired";
  } else if (lab.pttl === -2) {
    text = "not cached";
  } else if (lab.pttl === -1) {
    text = "no TTL";
  }
  $("lab-countdown").textContent = text;
}

async function resync() {
  if (!lab.key) return;
  try {
    const answer = await fc.get(`/api/lab/ttl?key=${encodeURIComponent(lab.key)}`);
    if (answer.key === lab.key) setTtl(answer.pttl_ms);
  } catch (e) { fc.fail(e); }
}

function figures(db, cache) {
  $("lab-db-p50").textContent = fc.ns(db.p50);
  $("lab-db-p99").textContent = fc.ns(db.p99);
  $("lab-cache-p50").textContent = fc.ns(cache.p50);
  $("lab-cache-p99").textContent = fc.ns(cache.p99);
}

function hitRatio(hits, reads) {
  $("lab-hit-ratio").textContent = reads ? `${Math.round((100 * hits) / reads)} %` : "–";
  $("lab-hits").textContent = `${hits} hits of ${reads} reads`;
}

function handle(line) {
  if (line.type === "start") {
    lab.data = [[], [], [], [], [], [], []];
    lab.hits = 0;
    lab.key = line.key;
    $("lab-key").textContent = line.key;
    $("lab-expire").disabled = false;
    $("lab-progress").textContent = `0 of ${line.runs} rounds`;
    lab.runs = line.runs;
  } else if (line.type === "round") {
    const d = lab.data;
    d[0].push(line.round);
    d[1].push(line.database_ns);
    d[2].push(line.cache_ns);
    d[3].push(line.database.p50);
    d[4].push(line.database.p99);
    d[5].push(line.cache.p50);
    d[6].push(line.cache.p99);
    lab.hits += line.hit ? 1 : 0;
    figures(line.database, line.cache);
    hitRatio(lab.hits, line.round);
    if (line.round === 1) {
      $("lab-first").textContent = line.hit
        ? "first read: hit (the key was cached)"
        : `first read: miss (served by the ${line.served_by}; the key was stored)`;
    }
    $("lab-progress").textContent = `${line.round} of ${lab.runs} rounds; last read: ${line.hit ? "hit" : "miss"}, ${line.served_by}, ${line.rows} rows`;
  } else if (line.type === "done") {
    figures(line.database, line.cache);
    hitRatio(line.hits, line.reads);
    setTtl(line.pttl_ms);
  } else if (line.type === "error") {
    fc.fail(line.error);
  }
}

function draw() {
  if (!lab.data[0].length) return;
  if (lab.chart) {
    lab.chart.setData(lab.data);
    return;
  }
  const style = getComputedStyle(document.documentElement);
  const dbColor = style.getPropertyValue("--db").trim() || "#c2410c";
  const cacheColor = style.getPropertyValue("--cache").trim() || "#0f766e";
  const ns = (u, v) => (v === null || v === undefined ? "–" : fc.ns(v));
  const dots = (color) => ({ stroke: color, width: 0, value: ns, points: { show: true, size: 5, fill: color } });
  const line = (color, dash) => ({ stroke: color, width: 2, dash, value: ns, points: { show: false } });
  const holder = $("lab-chart");
  lab.chart = new uPlot(
    {
      width: Math.max(320, holder.clientWidth),
      height: 380,
      scales: { x: { time: false }, y: { distr: 3 } },
      axes: [
        { label: "request", incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000] },
        { label: "latency (log scale)", size: 80, values: (u, ticks) => ticks.map((v) => fc.ns(v)) },
      ],
      series: [
        { label: "request" },
        { label: "database", ...dots(dbColor) },
        { label: "cache-aside", ...dots(cacheColor) },
        { label: "database p50", ...line(dbColor, []) },
        { label: "database p99", ...line(dbColor, [8, 5]) },
        { label: "cache-aside p50", ...line(cacheColor, []) },
        { label: "cache-aside p99", ...line(cacheColor, [8, 5]) },
      ],
      hooks: {
        draw: [
          (u) => {
            if (lab.firstChartMs === null && u.data[0].length) {
              lab.firstChartMs = performance.now();
              performance.mark("lab-first-chart");
            }
          },
        ],
      },
    },
    lab.data,
    holder,
  );
  window.addEventListener("resize", () => lab.chart.setSize({ width: Math.max(320, holder.clientWidth), height: 380 }));
}

async function failed(response) {
  let text = `${response.status} ${response.statusText}`;
  try {
    const data = await response.json();
    if (data && data.error) text = data.error;
  } catch (e) { /* not JSON */ }
  return new Error(text);
}

async function run() {
  if (lab.running) return;
  fc.clear();
  const controller = new AbortController();
  lab.running = controller;
  busy(true);
  try {
    const response = await fetch("/api/lab/run", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": fc.csrf() },
      body: JSON.stringify(request()),
      signal: controller.signal,
    });
    if (!response.ok) throw await failed(response);
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n")) >= 0) {
        const text = buffer.slice(0, end);
        buffer = buffer.slice(end + 1);
        if (text) handle(JSON.parse(text));
      }
      draw();
    }
  } catch (e) {
    if (e.name === "AbortError") $("lab-progress").textContent += " (stopped)";
    else fc.fail(e);
  } finally {
    lab.running = null;
    busy(false);
  }
}

async function action(url, body, say) {
  fc.clear();
  try {
    const answer = await fc.post(url, body);
    $("lab-action").textContent = say(answer);
    await resync();
  } catch (e) { fc.fail(e); }
}

async function init() {
  try {
    lab.info = await fc.get("/api/lab/queries");
  } catch (e) {
    fc.fail(e);
    return;
  }
  const select = $("lab-query");
  for (const query of lab.info.queries) {
    const option = document.createElement("option");
    option.value = query.name;
    option.textContent = query.name;
    select.append(option);
  }
  const wanted = new URLSearchParams(location.search).get("query"); // /lab?query=flight_search
  if (lab.info.queries.some((q) => q.name === wanted)) select.value = wanted;
  select.addEventListener("change", showParams);
  showParams();
  for (const [id, limits] of [["lab-runs", lab.info.runs], ["lab-ttl-input", lab.info.ttl]]) {
    Object.assign($(id), { min: limits.min, max: limits.max, value: limits.default });
  }
  $("lab-scope").textContent = `${lab.info.scope}*`;
  $("lab-form").addEventListener("submit", (event) => { event.preventDefault(); run(); });
  $("lab-stop").addEventListener("click", () => lab.running && lab.running.abort());
  $("lab-expire").addEventListener("click", () =>
    action("/api/lab/expire", { key: lab.key }, (a) => `PEXPIRE ${a.key} 1: ${a.expired ? "expired" : "was not cached"}`));
  $("lab-flush").addEventListener("click", () =>
    action("/api/lab/flush", {}, (a) => `deleted ${a.deleted} keys matching ${a.match}`));
  setInterval(tick, 100);
  setInterval(() => { if (!lab.running && document.visibilityState === "visible") resync(); }, 5000);
  run(); // the lab runs once when it opens
}

init();
