// Rubra dashboard. Plain JS, no build step. Every string that came from the API is put into
// the page with textContent (via `h`), never as markup.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const KEY = "rubra.key";
  let key = sessionStorage.getItem(KEY) || "";
  let isAdmin = false;
  let asClient = "";
  let current = null; // the view shown: { name, stop() }

  // ---- small helpers ------------------------------------------------------------------------

  /** An element with attributes/properties and children (strings become text nodes). */
  function h(tag, props, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v == null || v === false) continue;
      if (k === "on") for (const [ev, f] of Object.entries(v)) e.addEventListener(ev, f);
      else if (k === "class") e.className = v;
      else if (k in e && typeof v !== "string") e[k] = v;
      else e.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of kids.flat()) if (c != null && c !== false) e.append(c instanceof Node ? c : String(c));
    return e;
  }
  const clear = (e) => { e.replaceChildren(); return e; };

  /** The items of a list answer, old shape (a bare array) or new (`{items, next_cursor}`). */
  function listOf(body) {
    if (Array.isArray(body)) return { items: body, next: null };
    const items = body && (body.items || body.overlays || body.clients || body.changes) || [];
    return { items, next: (body && (body.next_cursor ?? body.next_since)) ?? null };
  }

  /** A time from the API as a Date: RFC 3339 text or epoch milliseconds (number or digits). */
  function timeOf(v) {
    if (v == null || v === "") return null;
    if (typeof v === "number") return new Date(v);
    if (/^-?\d+$/.test(v)) return new Date(Number(v));
    const d = new Date(v);
    return isNaN(d) ? null : d;
  }
  const fmtTime = (v) => { const d = timeOf(v); return d ? d.toLocaleString() : ""; };
  const fmtPct = (x) => (typeof x === "number" ? (x * 100).toFixed(1) + " %" : "");

  function toast(msg, isErr) {
    const p = h("p", { class: isErr ? "err" : "" }, msg);
    $("toast").append(p);
    setTimeout(() => p.remove(), isErr ? 8000 : 3000);
  }

  class ApiError extends Error {
    constructor(status, code, message) { super(code ? code + ": " + message : message); this.status = status; this.code = code; }
  }

  /** `path` with `client=` added when an admin views one client. */
  function scoped(path) {
    if (!isAdmin || !asClient) return path;
    return path + (path.includes("?") ? "&" : "?") + "client=" + encodeURIComponent(asClient);
  }

  async function call(method, path, body, headers, signal) {
    const init = { method, headers: Object.assign({ authorization: "Bearer " + key }, headers || {}), signal };
    if (body !== undefined) {
      if (body instanceof Blob || body instanceof FormData) init.body = body;
      else { init.body = JSON.stringify(body); init.headers["content-type"] = "application/json"; }
    }
    const r = await fetch(path, init);
    if (!r.ok) {
      const j = await r.json().catch(() => ({}));
      if (r.status === 401 && key) { signOut("The key was refused: sign in again."); }
      throw new ApiError(r.status, j.error && j.error.code, (j.error && j.error.message) || r.statusText);
    }
    return r;
  }
  const api = async (path, signal) => {
    const r = await call("GET", path, undefined, undefined, signal);
    return r.json();
  };
  const send = async (method, path, body, headers) => {
    const r = await call(method, path, body, headers);
    const t = await r.text();
    return t ? JSON.parse(t) : null;
  };
  const report = (e) => { if (e.name !== "AbortError") toast(e.message, true); };

  /**
   * Follows a Server-Sent Events stream with the key in a header (EventSource cannot send
   * one), resuming after the last id on reconnect. Returns a function that stops it.
   */
  function follow(path, onEvent, onState) {
    const ctl = new AbortController();
    let last = null, delay = 500;
    (async () => {
      while (!ctl.signal.aborted) {
        try {
          const hdr = last ? { "last-event-id": last } : {};
          const r = await call("GET", path, undefined, hdr, ctl.signal);
          onState && onState("live");
          delay = 500;
          const reader = r.body.getReader(), dec = new TextDecoder();
          let buf = "";
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buf += dec.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
            let end;
            while ((end = buf.indexOf("\n\n")) >= 0) {
              const block = buf.slice(0, end); buf = buf.slice(end + 2);
              let id = null, type = "message", data = [];
              for (const line of block.split("\n")) {
                const i = line.indexOf(":");
                if (i === 0) continue;
                const f = i < 0 ? line : line.slice(0, i);
                const v = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
                if (f === "id") id = v; else if (f === "event") type = v; else if (f === "data") data.push(v);
              }
              if (id != null) last = id;
              if (data.length) {
                let parsed; try { parsed = JSON.parse(data.join("\n")); } catch { parsed = data.join("\n"); }
                onEvent(type, parsed, id);
              }
            }
          }
        } catch (e) {
          if (ctl.signal.aborted) return;
          if (e.status && e.status !== 503 && e.status !== 429) { onState && onState("stopped: " + e.message); return; }
        }
        onState && onState("reconnecting…");
        await new Promise((res) => setTimeout(res, delay));
        delay = Math.min(delay * 2, 10000);
      }
    })();
    return () => ctl.abort();
  }

  /** Calls `f` every `ms` while the view lives, one call at a time. */
  function every(ms, f) {
    let stopped = false, timer = null;
    const tick = async () => {
      if (stopped) return;
      try { await f(); } catch (e) { report(e); }
      if (!stopped) timer = setTimeout(tick, ms);
    };
    timer = setTimeout(tick, ms);
    return () => { stopped = true; clearTimeout(timer); };
  }

  function table(el, cols, rows, empty) {
    clear(el);
    if (!rows.length) { el.append(h("tr", {}, h("td", {}, empty || "None yet."))); return; }
    el.append(h("thead", {}, h("tr", {}, cols.map((c) => h("th", { scope: "col", class: c[2] || "" }, c[0])))));
    el.append(h("tbody", {}, rows.map((r) => h("tr", {}, cols.map((c) => h("td", { class: c[2] || "" }, c[1](r)))))));
  }

  function copyButton(btn, text) {
    btn.onclick = async () => {
      try { await navigator.clipboard.writeText(text()); toast("Copied."); }
      catch { toast("Copy failed: select the text and copy it.", true); }
    };
  }

  /** Cursor paging over a list endpoint; `render(items)` shows one page. */
  function pager(firstBtn, nextBtn, path, render) {
    let cursor = null, next = null;
    const load = async () => {
      const sep = path().includes("?") ? "&" : "?";
      const body = await api(cursor ? path() + sep + "cursor=" + encodeURIComponent(cursor) : path());
      const l = listOf(body);
      next = l.next;
      nextBtn.disabled = !next;
      firstBtn.disabled = !cursor;
      render(l.items);
    };
    firstBtn.onclick = () => { cursor = null; load().catch(report); };
    nextBtn.onclick = () => { if (next) { cursor = next; load().catch(report); } };
    return { load, reset: () => { cursor = null; }, onFirstPage: () => cursor === null };
  }

  /**
   * True (and says so at the top of `view`) when an admin has not picked a client: the API
   * needs one for what `view` creates, uploads or streams.
   */
  function needsClient(view) {
    const need = isAdmin && !asClient;
    const sec = $("view-" + view);
    let p = sec.querySelector(".notice");
    if (!p) {
      p = h("p", { class: "notice" }, "Admin key: pick a client under “View as” to create, upload or follow anything here.");
      sec.querySelector("h2").after(p);
    }
    p.hidden = !need;
    return need;
  }
  const refuseWithoutClient = (view) => {
    if (!needsClient(view)) return false;
    toast("Pick a client under “View as” first.", true);
    return true;
  };

  async function blobUrl(path, signal) {
    const r = await call("GET", path, undefined, undefined, signal);
    return URL.createObjectURL(await r.blob());
  }

  // ---- sign-in and the shell -----------------------------------------------------------------

  async function signIn(k) {
    key = k;
    let probe;
    try {
      probe = await api("/stats");
    } catch (e) {
      key = "";
      throw e;
    }
    sessionStorage.setItem(KEY, key);
    // A client's statistics name the client; an admin's (all clients) name none.
    isAdmin = probe.client == null;
    if (isAdmin) {
      const sel = clear($("as-client"));
      sel.append(h("option", { value: "" }, "all clients"));
      for (const c of listOf(await api("/clients")).items) sel.append(h("option", { value: c.id }, c.name + " (" + c.id + ")"));
    }
    $("sign-in").hidden = true;
    $("nav").hidden = false;
    $("sign-out").hidden = false;
    $("nav-clients").hidden = !isAdmin;
    $("as-box").hidden = !isAdmin;
    route();
  }

  function signOut(msg) {
    key = ""; isAdmin = false; asClient = "";
    sessionStorage.removeItem(KEY);
    if (current) current.stop();
    current = null;
    for (const v of document.querySelectorAll(".view")) v.hidden = true;
    $("nav").hidden = true; $("sign-out").hidden = true; $("as-box").hidden = true;
    $("sign-in").hidden = false;
    $("key").value = "";
    $("sign-in-error").textContent = msg || "";
    $("key").focus();
  }

  $("sign-in-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    $("sign-in-error").textContent = "";
    signIn($("key").value.trim()).catch((e) => { $("sign-in-error").textContent = e.message; });
  });
  $("sign-out").addEventListener("click", () => signOut("Signed out."));
  $("as-client").addEventListener("change", (e) => { asClient = e.target.value; route(); });

  const views = {};
  function route() {
    if (!key) return;
    const [name, arg] = (location.hash.slice(1) || "stats").split("/");
    const v = views[name] ? name : "stats";
    if (current) current.stop();
    for (const s of document.querySelectorAll(".view")) s.hidden = s.id !== "view-" + v;
    for (const a of document.querySelectorAll("#nav a")) {
      if (a.getAttribute("href") === "#" + (v === "image" ? "images" : v)) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
    current = { name: v, stop: () => {} };
    const stop = views[v](arg ? decodeURIComponent(arg) : null);
    current.stop = stop || (() => {});
  }
  window.addEventListener("hashchange", route);

  // ---- statistics ------------------------------------------------------------------------------

  const BUCKETS = [["1m", 60e3], ["5m", 300e3], ["1h", 3600e3], ["1d", 86400e3]];
  /** The smallest bucket that splits `span` ms into at most 400 bars. */
  const bucketFor = (span) => (BUCKETS.find(([, ms]) => span / ms <= 400) || BUCKETS[3])[0];
  let plot = null;

  function localInput(d) {
    const p = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
  }

  views.stats = () => {
    let seq = 0, shown = 0;
    const range = () => {
      if ($("range").value === "custom") {
        const f = Date.parse($("range-from").value), t = Date.parse($("range-to").value);
        if (isFinite(f) && isFinite(t) && f < t) return [f, t, false];
      }
      const span = Number($("range").value) || 86400e3, to = Date.now() + 1;
      return [to - span, to, true];
    };
    const load = async () => {
      const [from, to] = range();
      const bucket = bucketFor(to - from);
      const t = $("threshold-num").value;
      if (t === "" || !isFinite(Number(t))) return; // half typed: keep what is shown
      const mine = ++seq;
      const s = await api(scoped(`/stats?from=${from}&to=${to}&threshold=${encodeURIComponent(t)}&bucket=${bucket}`));
      if (mine < shown) return; // an older answer arriving late
      shown = mine;
      $("stats-total").textContent = s.total;
      $("stats-above").textContent = s.above;
      $("stats-threshold").textContent = String(s.threshold);
      $("stats-bucket").textContent = `(${listOf(s.buckets || []).items.length} buckets of ${s.bucket})`;
      draw(s);
    };
    const sync = (src, dst) => { if ($(src).value !== "") $(dst).value = $(src).value; load().catch(report); };
    $("threshold").oninput = () => sync("threshold", "threshold-num");
    $("threshold-num").oninput = () => sync("threshold-num", "threshold");
    $("range").onchange = () => {
      const custom = $("range").value === "custom";
      $("custom-range").hidden = !custom;
      if (custom && !$("range-from").value) {
        $("range-to").value = localInput(new Date());
        $("range-from").value = localInput(new Date(Date.now() - 86400e3));
      }
      load().catch(report);
    };
    $("range-from").onchange = $("range-to").onchange = () => load().catch(report);
    load().catch(report);
    const stopPoll = every(1000, async () => { if (range()[2]) await load(); });
    $("stats-live").textContent = "live";
    return () => { stopPoll(); $("stats-live").textContent = ""; };
  };

  function draw(s) {
    const buckets = s.buckets || [];
    const xs = buckets.map((b) => timeOf(b.start).getTime() / 1000);
    const totals = buckets.map((b) => b.total), above = buckets.map((b) => b.above);
    const tbl = $("stats-table");
    table(tbl, [["bucket start", (b) => fmtTime(b.start)], ["events", (b) => String(b.total)], ["above", (b) => String(b.above)]],
      buckets.filter((b) => b.total > 0), "No events in this range.");
    const el = $("chart");
    const width = Math.max(280, el.clientWidth || 600);
    const data = [xs, totals, above];
    if (plot && plot.rubraSpan === s.bucket && plot.width === width) { plot.setData(data); return; }
    if (plot) plot.destroy();
    if (typeof uPlot === "undefined") return;
    const bars = uPlot.paths.bars({ size: [0.8, 60] });
    plot = new uPlot({
      width, height: 300,
      cursor: { points: { show: false } },
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max)] } },
      axes: [{}, { label: "events", size: 60 }],
      series: [
        { label: "bucket start" },
        { label: "events", stroke: "#c77", fill: "#e8b4b4", paths: bars, points: { show: false } },
        { label: "above threshold", stroke: "#8b1a1a", fill: "#8b1a1a", paths: bars, points: { show: false } },
      ],
    }, data, el);
    plot.rubraSpan = s.bucket;
  }
  window.addEventListener("resize", () => { if (plot && current && current.name === "stats") plot.setSize({ width: Math.max(280, $("chart").clientWidth), height: 300 }); });

  // ---- images ----------------------------------------------------------------------------------

  views.images = () => {
    const ctl = new AbortController();
    const urls = [];
    let next = null;
    const grid = clear($("grid"));
    const loadPage = async (cursor) => {
      const body = await api("/images?limit=48" + (cursor ? "&cursor=" + encodeURIComponent(cursor) : ""), ctl.signal);
      const l = listOf(body);
      next = l.next;
      $("images-more").hidden = !next;
      if (!cursor) clear(grid);
      if (!l.items.length && !cursor) grid.append(h("li", {}, "No images yet: drop some above."));
      for (const img of l.items) {
        const pic = h("img", { alt: "image " + img.id, loading: "lazy" });
        const fill = h("i");
        fill.style.width = Math.round(Math.max(0, Math.min(1, img.red)) * 100) + "%";
        grid.append(h("li", { "data-id": img.id }, h("a", { href: "#image/" + encodeURIComponent(img.id) },
          pic, h("span", { class: "meter", title: "red level" }, fill),
          h("span", { class: "red-level" }, "red " + fmtPct(img.red)),
          h("span", { class: "hint" }, `${img.width}×${img.height} ${img.format}`))));
        blobUrl("/images/" + encodeURIComponent(img.id), ctl.signal).then((u) => { urls.push(u); pic.src = u; }).catch(() => {});
      }
    };
    $("images-more").onclick = () => loadPage(next).catch(report);
    needsClient("images");
    const upload = (files) => {
      if (refuseWithoutClient("images")) return;
      const list = $("uploads");
      let left = files.length;
      for (const f of files) {
        const bar = h("progress", { max: 100, value: 0 });
        const state = h("span", {}, "0 %");
        const li = h("li", {}, h("span", {}, f.name), bar, state);
        list.append(li);
        const x = new XMLHttpRequest();
        x.open("POST", scoped("/images"));
        x.setRequestHeader("authorization", "Bearer " + key);
        x.setRequestHeader("content-type", f.type || "application/octet-stream");
        x.upload.onprogress = (e) => { if (e.lengthComputable) { bar.value = (e.loaded / e.total) * 100; state.textContent = Math.round(bar.value) + " %"; } };
        x.onloadend = () => {
          let msg = "failed";
          try {
            const j = JSON.parse(x.responseText);
            msg = x.status < 300 ? "red " + fmtPct(j.red) : (j.error ? j.error.message : "HTTP " + x.status);
          } catch { msg = "HTTP " + x.status; }
          bar.value = 100;
          state.textContent = msg;
          if (x.status >= 300) li.classList.add("err");
          if (--left === 0) loadPage(null).catch(report);
        };
        x.send(f);
      }
    };
    $("files").onchange = (e) => { upload([...e.target.files]); e.target.value = ""; };
    const drop = $("drop");
    drop.ondragover = (e) => { e.preventDefault(); drop.classList.add("over"); };
    drop.ondragleave = () => drop.classList.remove("over");
    drop.ondrop = (e) => { e.preventDefault(); drop.classList.remove("over"); upload([...e.dataTransfer.files]); };
    drop.onkeydown = (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("files").click(); } };
    loadPage(null).catch(report);
    return () => { ctl.abort(); urls.forEach(URL.revokeObjectURL); };
  };

  views.image = (id) => {
    const ctl = new AbortController();
    let url = null;
    $("image-id").textContent = id;
    clear($("image-info"));
    $("image-full").removeAttribute("src");
    (async () => {
      const info = await api("/images/" + encodeURIComponent(id) + "/info", ctl.signal);
      const dl = $("image-info");
      for (const [k, v] of [["red level", fmtPct(info.red) + " (" + info.red + ")"], ["format", info.format],
        ["size", `${info.width} × ${info.height}`], ["bytes", info.bytes], ["uploaded", fmtTime(info.created_at)], ["id", info.id]]) {
        dl.append(h("dt", {}, k), h("dd", {}, String(v)));
      }
      url = await blobUrl("/images/" + encodeURIComponent(id), ctl.signal);
      $("image-full").src = url;
      $("image-download").onclick = () => {
        const a = h("a", { href: url, download: id + "." + (info.format === "jpeg" ? "jpg" : info.format) });
        document.body.append(a); a.click(); a.remove();
      };
    })().catch(report);
    return () => { ctl.abort(); if (url) URL.revokeObjectURL(url); };
  };

  // ---- watermarks ------------------------------------------------------------------------------

  views.watermark = () => {
    let result = null, timer = null;
    const loadOverlays = async (pick) => {
      const sel = clear($("wm-overlay"));
      const l = listOf(await api(scoped("/overlays")));
      if (!l.items.length) sel.append(h("option", { value: "" }, "no overlays yet: upload one"));
      for (const o of l.items) sel.append(h("option", { value: o.name }, o.name));
      if (pick) sel.value = pick;
    };
    const apply = async () => {
      if (needsClient("watermark")) return;
      const file = $("wm-image").files[0], overlay = $("wm-overlay").value;
      if (!file || !overlay) { $("wm-status").textContent = "Pick an overlay and an image."; return; }
      const q = new URLSearchParams({ overlay, gravity: $("wm-gravity").value, dx: $("wm-dx").value || "0",
        dy: $("wm-dy").value || "0", opacity: $("wm-opacity").value, scale: $("wm-scale").value || "1" });
      $("wm-status").textContent = "Working…";
      const r = await call("POST", scoped("/watermark?" + q), file, { "content-type": file.type || "image/jpeg" });
      const blob = await r.blob();
      if (result) URL.revokeObjectURL(result);
      result = URL.createObjectURL(blob);
      $("wm-result").src = result;
      $("wm-result").hidden = false;
      $("wm-download").href = result;
      $("wm-download").download = "watermarked." + (blob.type === "image/png" ? "png" : "jpg");
      $("wm-download").hidden = false;
      $("wm-status").textContent = `${Math.round(blob.size / 1024)} KB, ${r.headers.get("x-rubra-watermark-route") || ""}`;
    };
    const soon = () => { clearTimeout(timer); timer = setTimeout(() => apply().catch((e) => { $("wm-status").textContent = e.message; }), 250); };
    $("wm-form").onsubmit = (e) => { e.preventDefault(); clearTimeout(timer); apply().catch((e2) => { $("wm-status").textContent = e2.message; }); };
    for (const id of ["wm-overlay", "wm-image", "wm-gravity", "wm-dx", "wm-dy", "wm-opacity", "wm-scale"]) $(id).oninput = soon;
    $("wm-overlay-file").onchange = async (e) => {
      const f = e.target.files[0], name = $("wm-name").value.trim() || (f && f.name.replace(/\.png$/i, "").replace(/[^A-Za-z0-9_.-]/g, "_"));
      if (!f || !name || refuseWithoutClient("watermark")) return;
      try {
        await send("PUT", scoped("/overlays/" + encodeURIComponent(name)), f, { "content-type": "image/png" });
        toast("Overlay " + name + " stored.");
        await loadOverlays(name);
        soon();
      } catch (err) { report(err); }
      e.target.value = "";
    };
    if (!needsClient("watermark")) loadOverlays().catch(report);
    return () => { clearTimeout(timer); };
  };

  // ---- notifications ---------------------------------------------------------------------------

  views.notifications = () => {
    const showFor = () => {
      for (const l of document.querySelectorAll("#sub-form [data-for]")) l.hidden = l.dataset.for !== $("sub-type").value;
    };
    $("sub-type").onchange = showFor;
    showFor();
    const loadSubs = async () => {
      const l = listOf(await api(scoped("/subscriptions")));
      table($("subs"), [
        ["id", (s) => s.id],
        ["channel", (s) => s.channel ? s.channel.type + (s.channel.url ? " " + s.channel.url : "") + (s.channel.receiver ? " " + s.channel.receiver : "") : ""],
        ["threshold", (s) => s.threshold == null ? "—" : String(s.threshold)],
        ["types", (s) => (s.types || []).join(", ") || "—"],
        ["state", (s) => (s.state || "") + (s.paused_reason ? " — " + s.paused_reason : "")],
        ["", (s) => [
          s.state && s.state !== "active" ? h("button", { type: "button", on: { click: () => send("POST", "/subscriptions/" + encodeURIComponent(s.id) + "/resume").then(loadSubs).catch(report) } }, "Resume") : null,
          s.state === "active" ? h("button", { type: "button", on: { click: () => send("POST", "/subscriptions/" + encodeURIComponent(s.id) + "/pause").then(loadSubs).catch(report) } }, "Pause") : null,
          " ",
          h("button", { type: "button", on: { click: () => { if (confirm("Delete subscription " + s.id + "?")) send("DELETE", "/subscriptions/" + encodeURIComponent(s.id)).then(loadSubs).catch(report); } } }, "Delete"),
        ]],
      ], l.items, "No subscriptions yet.");
    };
    $("sub-form").onsubmit = async (e) => {
      e.preventDefault();
      if (refuseWithoutClient("notifications")) return;
      const type = $("sub-type").value;
      const channel = type === "webhook" ? { type, url: $("sub-url").value.trim() }
        : type === "viber" ? { type, receiver: $("sub-receiver").value.trim(), auth_token: $("sub-token").value } : { type };
      const body = { channel };
      if ($("sub-threshold").value !== "") body.threshold = Number($("sub-threshold").value);
      const types = $("sub-types").value.split(",").map((s) => s.trim()).filter(Boolean);
      if (types.length) body.types = types;
      try {
        const s = await send("POST", scoped("/subscriptions"), body);
        $("sub-token").value = "";
        if (s && s.secret) { $("sub-secret-value").textContent = s.secret; $("sub-secret").hidden = false; $("sub-secret-copy").focus(); }
        toast("Subscription " + s.id + " created.");
        await loadSubs();
      } catch (err) { report(err); }
    };
    copyButton($("sub-secret-copy"), () => $("sub-secret-value").textContent);
    $("sub-secret-close").onclick = () => { $("sub-secret-value").textContent = ""; $("sub-secret").hidden = true; };
    const log = pager($("log-first"), $("log-next"), () => scoped("/notifications?limit=20"), (items) => table($("log"), [
      ["at", (r) => fmtTime(r.at)], ["subscription", (r) => r.subscription_id], ["outcome", (r) => r.outcome + (r.error ? " — " + r.error : "")],
      ["status", (r) => r.status_code == null ? "—" : String(r.status_code)], ["latency", (r) => r.latency_ms == null ? "—" : r.latency_ms + " ms"],
    ], items, "No deliveries yet."));
    const feed = clear($("feed"));
    $("feed-state").textContent = "";
    const stopFeed = needsClient("notifications") ? () => {} : follow(scoped("/notifications/stream"), (type, n) => {
      const d = (n && n.data) || {};
      let what;
      if (n.type === "red.threshold_exceeded") what = `red ${d.red} > ${d.threshold}` + (d.image_id ? ` (image ${d.image_id})` : "");
      else if (n.type === "watch.changed") what = `watch ${d.watch_id}: ${(d.changes || []).length} change(s)`;
      else what = JSON.stringify(d.message ?? d);
      const li = h("li", { class: "fresh", "data-seq": d.seq }, h("strong", {}, n.type || type), " ", fmtTime(n.timestamp), " — ", what);
      feed.prepend(li);
      setTimeout(() => li.classList.remove("fresh"), 3000);
      while (feed.children.length > 200) feed.lastChild.remove();
    }, (st) => { $("feed-state").textContent = st; });
    loadSubs().catch(report);
    log.load().catch(report);
    // New deliveries come first: keep the first page of the log current.
    const stopPoll = every(2000, async () => { await loadSubs(); if (log.onFirstPage()) await log.load(); });
    return () => { stopFeed(); stopPoll(); };
  };

  // ---- jobs ------------------------------------------------------------------------------------

  const ACTIVE = new Set(["queued", "running"]);
  views.jobs = () => {
    needsClient("jobs");
    const render = (items) => table($("jobs"), [
      ["id", (j) => j.id, "hide-narrow"],
      ["source", (j) => j.source],
      ["state", (j) => j.state + (j.cancel_requested && ACTIVE.has(j.state) ? " (canceling)" : "") + (j.error ? " — " + j.error.message : "")],
      ["progress", (j) => {
        const p = j.progress || {};
        const f = j.state === "succeeded" ? 1 : p.bytes_total ? p.bytes_done / p.bytes_total : 0;
        return [h("progress", { max: 100, value: Math.round(f * 100), "aria-label": "progress of job " + j.id }), " ", h("span", { class: "pct" }, Math.round(f * 100) + " %")];
      }],
      ["sums", (j) => j.result ? h("table", { class: "sums" }, h("tr", {}, h("th", {}, "rows"), h("td", {}, String(j.result.rows))),
        j.result.columns.map((c) => h("tr", {}, h("th", {}, c.name || "#" + c.index), h("td", {}, String(c.sum))))) : ""],
      ["", (j) => ACTIVE.has(j.state) ? h("button", { type: "button", on: { click: () => send("DELETE", "/jobs/" + encodeURIComponent(j.id)).then(() => list.load()).catch(report) } }, "Cancel") : ""],
    ], items, "No jobs yet.");
    let anyActive = false;
    const list = pager($("jobs-first"), $("jobs-next"), () => scoped("/jobs?limit=20"), (items) => { anyActive = items.some((j) => ACTIVE.has(j.state)); render(items); });
    $("job-form").onsubmit = async (e) => {
      e.preventDefault();
      if (refuseWithoutClient("jobs")) return;
      const body = { source: $("job-source").value.trim(), header: $("job-header").checked, skip_invalid: $("job-skip").checked };
      if ($("job-step").value) body.step = Number($("job-step").value);
      if ($("job-delim").value) body.delimiter = $("job-delim").value;
      try { const j = await send("POST", scoped("/jobs"), body); toast("Job " + j.id + " " + j.state + "."); list.reset(); await list.load(); }
      catch (err) { report(err); }
    };
    list.load().catch(report);
    let n = 0;
    const stopPoll = every(700, async () => { if (anyActive || ++n % 5 === 0) await list.load(); });
    return stopPoll;
  };

  // ---- watches ---------------------------------------------------------------------------------

  views.watches = () => {
    let stopChanges = () => {}, followed = null, pending = null;
    // A change means the watch's status and count moved too: show them without waiting.
    const refreshSoon = () => { if (!pending) pending = setTimeout(() => { pending = null; load().catch(report); }, 200); };
    const show = (w) => {
      stopChanges();
      followed = w.id;
      $("changes-of").textContent = "of " + w.url;
      const ol = clear($("changes"));
      stopChanges = follow("/watches/" + encodeURIComponent(w.id) + "/stream", (type, c) => {
        const li = h("li", { class: "fresh" }, h("code", {}, c.path === "" ? "(root)" : c.path), " ", c.op || "", ": ",
          h("span", { class: "old" }, c.old === undefined ? "—" : JSON.stringify(c.old)), " → ",
          h("span", { class: "new" }, c.new === undefined ? "—" : JSON.stringify(c.new)), " ", h("span", { class: "hint" }, fmtTime(c.ts)));
        ol.prepend(li);
        setTimeout(() => li.classList.remove("fresh"), 3000);
        while (ol.children.length > 500) ol.lastChild.remove();
        refreshSoon();
      }, (st) => { $("changes-of").textContent = "of " + w.url + " — " + st; });
    };
    const load = async () => {
      const l = listOf(await api(scoped("/watches")));
      table($("watches"), [
        ["url", (w) => w.url], ["every", (w) => w.interval_ms + " ms", "hide-narrow"], ["status", (w) => w.status + (w.last_error ? " — " + w.last_error : "")],
        ["changes", (w) => String(w.last_seq ?? 0)], ["last ok", (w) => fmtTime(w.last_ok_at), "hide-narrow"],
        ["", (w) => [h("button", { type: "button", "aria-pressed": String(followed === w.id), on: { click: () => { show(w); load().catch(report); } } }, "Follow"), " ",
          h("button", { type: "button", on: { click: () => { if (confirm("Delete this watch?")) send("DELETE", "/watches/" + encodeURIComponent(w.id)).then(load).catch(report); } } }, "Delete")]],
      ], l.items, "No watches yet.");
      if (!followed && l.items.length) show(l.items[0]);
    };
    $("watch-form").onsubmit = async (e) => {
      e.preventDefault();
      if (refuseWithoutClient("watches")) return;
      const body = { url: $("watch-url").value.trim(), interval_ms: Number($("watch-interval").value) || 60000 };
      if ($("watch-pointer").value.trim()) body.pointer = $("watch-pointer").value.trim();
      try { const w = await send("POST", scoped("/watches"), body); toast("Watching " + w.url); show(w); await load(); }
      catch (err) { report(err); }
    };
    clear($("changes")); $("changes-of").textContent = "";
    needsClient("watches");
    load().catch(report);
    const stopPoll = every(3000, load);
    return () => { stopPoll(); stopChanges(); clearTimeout(pending); };
  };

  // ---- clients (admins) ------------------------------------------------------------------------

  views.clients = () => {
    const load = async () => {
      const l = listOf(await api("/clients"));
      table($("clients"), [["name", (c) => c.name], ["id", (c) => c.id, "hide-narrow"], ["created", (c) => fmtTime(c.created_at)],
        ["", (c) => h("button", { type: "button", on: { click: () => { asClient = c.id; $("as-client").value = c.id; location.hash = "#stats"; } } }, "View as")]],
      l.items, "No clients yet.");
    };
    $("client-form").onsubmit = async (e) => {
      e.preventDefault();
      try {
        const c = await send("POST", "/clients", { name: $("client-name").value.trim() });
        $("client-key-value").textContent = c.api_key; $("client-key").hidden = false;
        $("as-client").append(h("option", { value: c.id }, c.name + " (" + c.id + ")"));
        await load();
      } catch (err) { report(err); }
    };
    copyButton($("client-key-copy"), () => $("client-key-value").textContent);
    load().catch(report);
    return () => { $("client-key-value").textContent = ""; $("client-key").hidden = true; };
  };

  // ---- start -----------------------------------------------------------------------------------
  if (key) signIn(key).catch(() => signOut("Sign in again."));
  else $("key").focus();
})();
