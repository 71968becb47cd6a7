"use strict";
(async () => {
  try {
    const status = await fc.get("/health").catch((e) => ({ ok: false, error: e.message }));
    const parts = [];
    if (status.valkey) parts.push(`Valkey ${status.valkey.ok ? "up" : "down"}`);
    if (status.database) parts.push(`database ${status.database.ok ? "up" : "down"}`);
    const el = fc.text("health", parts.join(", ") || status.error || "unknown");
    el.className = status.ok ? "up" : "down";
  } catch (e) { fc.text("health", e.message); }
})();
