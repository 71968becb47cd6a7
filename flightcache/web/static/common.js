// flightcache serve: what every page's script shares. No library, nothing fetched
// from elsewhere. Text from the server is always put in with textContent.
"use strict";

const fc = {
  csrf() {
    const m = document.cookie.match(/(?:^|;\s*)fc_csrf=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : "";
  },

  // fetch JSON; a POST carries the CSRF header. Throws an Error with the server's text.
  async call(method, url, body) {
    const options = { method, headers: { "Accept": "application/json" }, credentials: "same-origin" };
    if (method !== "GET") {
      options.headers["X-CSRF-Token"] = fc.csrf();
      if (body !== undefined) {
        options.headers["Content-Type"] = "application/json";
        options.body = JSON.stringify(body);
      }
    }
    const response = await fetch(url, options);
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    if (!response.ok) {
      const text = data && data.error ? data.error : `${response.status} ${response.statusText}`;
      const error = new Error(text);
      error.status = response.status;
      throw error;
    }
    return data;
  },
  get(url) { return fc.call("GET", url); },
  post(url, body) { return fc.call("POST", url, body === undefined ? {} : body); },

  // set an element's text (by id)
  text(id, value) { const el = document.getElementById(id); if (el) el.textContent = value; return el; },

  // a duration in nanoseconds as a person reads it: 812 ns, 143 µs, 12.5 ms, 1.2 s
  ns(value) {
    if (value === null || value === undefined || isNaN(value)) return "–";
    const units = [[1e9, "s"], [1e6, "ms"], [1e3, "µs"]];
    for (const [size, unit] of units) {
      if (value >= size) return `${fc.trim(value / size)} ${unit}`;
    }
    return `${Math.round(value)} ns`;
  },
  // zeros after the decimal point only: 100 stays 100, 10.50 is 10.5, 2.00 is 2
  trim(x) { return (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2)).replace(/\.0+$|(\.\d*?)0+$/, "$1"); },

  // a websocket to a path of this server (same origin, so the access cookie goes along)
  socket(path) {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return new WebSocket(`${scheme}//${location.host}${path}`);
  },

  // show an error in the element with id "error" (every page has one)
  fail(error) { fc.text("error", error && error.message ? error.message : String(error)); },
  clear() { fc.text("error", ""); },
};
