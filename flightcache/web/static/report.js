// The bench report page: post the chosen file, show the report the server drew in a
// sandboxed frame (no script runs in it), offer it for saving. Nothing from the file
// is put into this page's DOM.
"use strict";

(function () {
  const input = document.getElementById("rep-file");
  const frame = document.getElementById("rep-frame");
  const save = document.getElementById("rep-save");
  let saved = null;

  async function show(file) {
    fc.clear();
    fc.text("rep-status", `drawing ${file.name}…`);
    const response = await fetch(`/report/render?name=${encodeURIComponent(file.name)}`, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRF-Token": fc.csrf(), "Content-Type": "application/json", "Accept": "text/html" },
      body: file,
    });
    if (!response.ok) {
      let text = `${response.status} ${response.statusText}`;
      try { text = (await response.json()).error || text; } catch (e) { /* not JSON */ }
      throw new Error(text);
    }
    const html = await response.text();
    frame.srcdoc = html;
    frame.hidden = false;
    if (saved) URL.revokeObjectURL(saved);
    saved = URL.createObjectURL(new Blob([html], { type: "text/html" }));
    save.href = saved;
    save.download = file.name.replace(/\.json$/i, "") + ".html";
    save.hidden = false;
    fc.text("rep-status", "");
  }

  frame.addEventListener("load", () => {
    const doc = frame.contentDocument;
    if (doc && doc.documentElement) frame.style.height = `${doc.documentElement.scrollHeight + 24}px`;
  });
  input.addEventListener("change", () => {
    if (!input.files.length) return;
    show(input.files[0]).catch((error) => {
      fc.text("rep-status", "");
      frame.hidden = true;
      save.hidden = true;
      fc.fail(error);
    });
  });
})();
