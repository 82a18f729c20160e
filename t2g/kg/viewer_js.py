"""The viewer page's inline CSS and JavaScript (t2g/kg/viewer.py), kept apart so each file stays small.

The layout is Fruchterman-Reingold, computed synchronously on load and after each search (a few
hundred nodes take well under a second), with a deterministic start (golden-angle spiral) so the
same graph draws the same way. Text enters the page only through textContent and the canvas.
"""

STYLE = r"""
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, sans-serif; color: #222; height: 100vh; display: flex;
       flex-direction: column; }
header { display: flex; gap: 12px; align-items: center; padding: 8px 12px; border-bottom: 1px solid #ddd; }
header form { display: flex; gap: 6px; }
#search { width: 260px; padding: 4px 6px; }
#status { color: #a33; }
main { flex: 1; display: flex; min-height: 0; }
canvas { flex: 1; min-width: 0; cursor: grab; background: #fcfcfc; }
aside { width: 320px; overflow-y: auto; padding: 8px 12px; border-left: 1px solid #ddd; }
h2 { font-size: 13px; text-transform: uppercase; color: #666; margin: 10px 0 4px; }
#legend-list { list-style: none; padding: 0; margin: 0; }
#legend-list li { display: flex; align-items: center; gap: 6px; }
.swatch { width: 12px; height: 12px; border-radius: 50%; display: inline-block; flex: none; }
#note { color: #555; font-style: italic; }
.hint { color: #777; }
.prov { margin: 4px 0; padding: 4px 6px; background: #f4f4f4; border-left: 3px solid #bbb; }
.where { color: #777; font-size: 12px; }
"""

SCRIPT = r"""
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("graph-data").textContent);
  const canvas = document.getElementById("graph"), ctx = canvas.getContext("2d");
  const details = document.getElementById("details"), status = document.getElementById("status");
  const byId = new Map(data.nodes.map((n) => [n.id, n]));
  const incident = new Map(data.nodes.map((n) => [n.id, []]));
  data.edges.forEach((e) => { incident.get(e.source).push(e); if (e.target !== e.source) incident.get(e.target).push(e); });
  let visible = { nodes: data.nodes, edges: data.edges };
  let view = { scale: 1, x: 0, y: 0 }, selected = null;

  function el(tag, text, cls) {
    const x = document.createElement(tag);
    if (text !== undefined) x.textContent = text;
    if (cls) x.className = cls;
    return x;
  }

  // Legend and note: built from data with textContent.
  const legend = document.getElementById("legend-list");
  Object.keys(data.types).forEach((t) => {
    const li = el("li"), sw = el("span", "", "swatch");
    sw.style.background = data.types[t];
    li.append(sw, el("span", t));
    legend.append(li);
  });
  document.getElementById("note").textContent = data.note;

  function layout(nodes, edges) {
    const n = nodes.length, w = 1000, h = 700, k = Math.sqrt((w * h) / Math.max(n, 1)) * 0.9;
    const golden = Math.PI * (3 - Math.sqrt(5));
    nodes.forEach((p, i) => { const r = 12 * Math.sqrt(i + 0.5); p.x = r * Math.cos(i * golden); p.y = r * Math.sin(i * golden); });
    const index = new Map(nodes.map((p, i) => [p.id, i]));
    const links = edges.filter((e) => e.source !== e.target).map((e) => [index.get(e.source), index.get(e.target)]);
    const dx = new Float64Array(n), dy = new Float64Array(n);
    const steps = n > 400 ? 150 : 300;
    let temp = w / 10;
    for (let step = 0; step < steps; step++) {
      dx.fill(0); dy.fill(0);
      for (let i = 0; i < n; i++) {
        for (let j = i + 1; j < n; j++) {
          let ux = nodes[i].x - nodes[j].x, uy = nodes[i].y - nodes[j].y;
          let d2 = ux * ux + uy * uy;
          if (d2 < 0.01) { ux = 0.1 * (i - j); uy = 0.1; d2 = ux * ux + uy * uy; }
          const f = (k * k) / d2;
          dx[i] += ux * f; dy[i] += uy * f; dx[j] -= ux * f; dy[j] -= uy * f;
        }
      }
      for (const [a, b] of links) {
        const ux = nodes[a].x - nodes[b].x, uy = nodes[a].y - nodes[b].y;
        const d = Math.sqrt(ux * ux + uy * uy) + 0.01, f = d / k;
        dx[a] -= ux * f; dy[a] -= uy * f; dx[b] += ux * f; dy[b] += uy * f;
      }
      for (let i = 0; i < n; i++) {
        dx[i] -= nodes[i].x * 0.06 * k / 10; dy[i] -= nodes[i].y * 0.06 * k / 10;  // gravity: keep parts close
        const d = Math.sqrt(dx[i] * dx[i] + dy[i] * dy[i]) + 1e-9, m = Math.min(d, temp);
        nodes[i].x += (dx[i] / d) * m; nodes[i].y += (dy[i] / d) * m;
      }
      temp *= 0.985;
    }
  }

  function fit() {
    const r = canvas.getBoundingClientRect();
    canvas.width = r.width * devicePixelRatio; canvas.height = r.height * devicePixelRatio;
    if (!visible.nodes.length) return;
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    visible.nodes.forEach((p) => { x0 = Math.min(x0, p.x); y0 = Math.min(y0, p.y); x1 = Math.max(x1, p.x); y1 = Math.max(y1, p.y); });
    const pad = 60, sw = (r.width - 2 * pad) / Math.max(x1 - x0, 1), sh = (r.height - 2 * pad) / Math.max(y1 - y0, 1);
    view.scale = Math.min(sw, sh, 3);
    view.x = r.width / 2 - ((x0 + x1) / 2) * view.scale; view.y = r.height / 2 - ((y0 + y1) / 2) * view.scale;
  }

  const radius = (p) => 5 + Math.min(Math.sqrt(p.degree) * 2.5, 14);
  const screen = (p) => [p.x * view.scale + view.x, p.y * view.scale + view.y];

  // Parallel edges (two relation types between one pair) are drawn side by side, offset sideways.
  function segments() {
    const groups = new Map();
    visible.edges.forEach((e) => {
      const key = [e.source, e.target].sort().join("\u0000");
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(e);
    });
    const out = [];
    groups.forEach((list) => list.forEach((e, i) => {
      const a = screen(byId.get(e.source)), b = screen(byId.get(e.target));
      const len = Math.hypot(b[0] - a[0], b[1] - a[1]) || 1, off = (i - (list.length - 1) / 2) * 7;
      const sign = e.source < e.target ? 1 : -1, nx = (-(b[1] - a[1]) / len) * off * sign, ny = ((b[0] - a[0]) / len) * off * sign;
      out.push({ e: e, a: [a[0] + nx, a[1] + ny], b: [b[0] + nx, b[1] + ny] });
    }));
    return out;
  }

  function draw() {
    ctx.setTransform(devicePixelRatio, 0, 0, devicePixelRatio, 0, 0);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    const focus = selected && selected.kind === "node" ? selected.item.id : null;
    segments().forEach((s) => {
      const hot = (selected && selected.item === s.e) || (focus && (s.e.source === focus || s.e.target === focus));
      ctx.strokeStyle = hot ? "#d62728" : "rgba(90,90,90,0.45)"; ctx.lineWidth = hot ? 2.2 : 1.1;
      ctx.beginPath(); ctx.moveTo(s.a[0], s.a[1]); ctx.lineTo(s.b[0], s.b[1]); ctx.stroke();
      const t = byId.get(s.e.target), ang = Math.atan2(s.b[1] - s.a[1], s.b[0] - s.a[0]), r = radius(t) + 2;
      const hx = s.b[0] - Math.cos(ang) * r, hy = s.b[1] - Math.sin(ang) * r;
      ctx.fillStyle = ctx.strokeStyle; ctx.beginPath(); ctx.moveTo(hx, hy);
      ctx.lineTo(hx - 8 * Math.cos(ang - 0.4), hy - 8 * Math.sin(ang - 0.4));
      ctx.lineTo(hx - 8 * Math.cos(ang + 0.4), hy - 8 * Math.sin(ang + 0.4)); ctx.fill();
      if (hot || visible.edges.length <= 40) {
        ctx.fillStyle = hot ? "#d62728" : "#777"; ctx.font = "11px system-ui, sans-serif";
        ctx.fillText(s.e.type, (s.a[0] + s.b[0]) / 2 + 3, (s.a[1] + s.b[1]) / 2 - 3);
      }
    });
    const labelled = new Set(visible.nodes.slice().sort((p, q) => q.degree - p.degree).slice(0, 60).map((p) => p.id));
    visible.nodes.forEach((p) => {
      const [x, y] = screen(p), r = radius(p);
      ctx.beginPath(); ctx.arc(x, y, r, 0, 2 * Math.PI);
      ctx.fillStyle = data.types[p.type] || "#999"; ctx.fill();
      ctx.lineWidth = p.id === focus ? 3 : 1; ctx.strokeStyle = p.id === focus ? "#d62728" : "#fff"; ctx.stroke();
      if (labelled.has(p.id) || p.id === focus) {
        ctx.fillStyle = "#222"; ctx.font = (p.id === focus ? "bold " : "") + "12px system-ui, sans-serif";
        ctx.fillText(p.name, x + r + 3, y + 4);
      }
    });
    document.body.dataset.renderedNodes = String(visible.nodes.length);
    document.body.dataset.renderedEdges = String(visible.edges.length);
    document.body.dataset.selected = selected ? selected.item.id : "";
  }

  function provenance(title, slot) {
    const box = el("div");
    box.append(el("h2", title + (slot ? " (" + slot.total + ")" : " (0)")));
    if (!slot) { box.append(el("p", "none recorded", "hint")); return box; }
    slot.items.forEach(([doc, start, end, text]) => {
      const p = el("p", "", "prov");
      p.append(el("span", text), el("br"), el("span", doc + " [" + start + ":" + end + "]", "where"));
      box.append(p);
    });
    if (slot.total > slot.items.length) box.append(el("p", "... and " + (slot.total - slot.items.length) + " more", "hint"));
    return box;
  }

  function show(kind, item) {
    selected = { kind: kind, item: item };
    details.replaceChildren(el("h2", "Details"));
    if (kind === "node") {
      details.append(el("p", item.name), el("p", "type: " + item.type + " | mentions: " + item.mentions +
        " | documents: " + item.docs + " | relations: " + item.degree, "where"));
      if (item.aliases.length) details.append(el("p", "aliases: " + item.aliases.join(", "), "where"));
      details.append(provenance("Mentions", data.mentions[item.id]));
      const items = [];
      let total = 0;
      incident.get(item.id).forEach((e) => { const s = data.evidence[e.id]; if (s) { total += s.total; items.push(...s.items); } });
      details.append(provenance("Evidence sentences", total ? { total: total, items: items.slice(0, 10) } : null));
    } else {
      const s = byId.get(item.source), t = byId.get(item.target);
      details.append(el("p", s.name + " \u2192 " + item.type + " \u2192 " + t.name), el("p", "count: " + item.count +
        " | confidence: " + (item.confidence === null ? "unknown" : item.confidence), "where"));
      details.append(provenance("Evidence sentences", data.evidence[item.id]));
    }
    draw();
  }

  function hit(mx, my) {
    for (const p of visible.nodes.slice().reverse()) {
      const [x, y] = screen(p);
      if (Math.hypot(mx - x, my - y) <= radius(p) + 2) return ["node", p];
    }
    let best = null, bestD = 5;
    segments().forEach((s) => {
      const vx = s.b[0] - s.a[0], vy = s.b[1] - s.a[1], l2 = vx * vx + vy * vy || 1;
      const t = Math.max(0, Math.min(1, ((mx - s.a[0]) * vx + (my - s.a[1]) * vy) / l2));
      const d = Math.hypot(mx - (s.a[0] + t * vx), my - (s.a[1] + t * vy));
      if (d < bestD) { bestD = d; best = ["edge", s.e]; }
    });
    return best;
  }

  function setVisible(nodes, edges) {
    visible = { nodes: nodes, edges: edges };
    layout(nodes, edges); fit(); draw();
  }

  function find(query) {
    const q = query.trim().toLowerCase();
    if (!q) return null;
    const tests = [(s) => s.toLowerCase() === q, (s) => s.toLowerCase().includes(q)];
    for (const test of tests) {
      const m = data.nodes.find((p) => test(p.name)) || data.nodes.find((p) => p.aliases.some(test));
      if (m) return m;
    }
    return null;
  }

  function neighbourhood(query) {
    const m = find(query);
    if (!m) { status.textContent = "No entity matches \u201c" + query + "\u201d"; return; }
    status.textContent = "";
    const ids = new Set([m.id]);
    incident.get(m.id).forEach((e) => { ids.add(e.source); ids.add(e.target); });
    setVisible(data.nodes.filter((p) => ids.has(p.id)), incident.get(m.id));
    show("node", m);
  }

  let drag = null;
  canvas.addEventListener("mousedown", (ev) => { drag = { x: ev.clientX, y: ev.clientY, moved: false }; });
  window.addEventListener("mousemove", (ev) => {
    if (!drag) return;
    const ddx = ev.clientX - drag.x, ddy = ev.clientY - drag.y;
    if (Math.abs(ddx) + Math.abs(ddy) > 2) drag.moved = true;
    view.x += ddx; view.y += ddy; drag.x = ev.clientX; drag.y = ev.clientY;
    if (drag.moved) draw();
  });
  window.addEventListener("mouseup", (ev) => {
    if (drag && !drag.moved) {
      const r = canvas.getBoundingClientRect(), h = hit(ev.clientX - r.left, ev.clientY - r.top);
      if (h) show(h[0], h[1]);
    }
    drag = null;
  });
  canvas.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    const r = canvas.getBoundingClientRect(), mx = ev.clientX - r.left, my = ev.clientY - r.top;
    const f = Math.exp(-ev.deltaY * 0.0015);
    view.x = mx - (mx - view.x) * f; view.y = my - (my - view.y) * f; view.scale *= f;
    draw();
  }, { passive: false });
  window.addEventListener("resize", () => { fit(); draw(); });
  document.getElementById("search-form").addEventListener("submit", (ev) => {
    ev.preventDefault(); neighbourhood(document.getElementById("search").value);
  });
  document.getElementById("show-all").addEventListener("click", () => {
    status.textContent = ""; selected = null; setVisible(data.nodes, data.edges);
  });

  setVisible(data.nodes, data.edges);
  // graph.html#search=NAME opens on a neighbourhood; #select=NAME opens on the whole graph, NAME selected.
  const params = new URLSearchParams(location.hash.slice(1)), wanted = params.get("search"), pick = params.get("select");
  if (wanted) { document.getElementById("search").value = wanted; neighbourhood(wanted); }
  if (pick) { const m = find(pick); if (m) show("node", m); }
  document.body.dataset.layout = "done";
})();
"""
