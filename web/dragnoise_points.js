// DragNoise point editor: click a handle, click its target; drag points to move them.
// The node's `points` string widget stays the single source of truth: a plain JSON list
// [{"handle":[x,y],"target":[x,y]}, ...] in IMAGE PIXELS (integers), so the workflow JSON and
// the API prompt carry exactly what an API user would type.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const NODE = "DragNoisePoints";
const HANDLE = "#e0262b"; // red, as in the paper's figures
const TARGET = "#1f5fe0"; // blue
const HIT = 9; // screen pixels
const SIZE_PROP = "dragnoise_image_size";
const IMAGE_PROP = "dragnoise_last_image"; // the node's own image, saved with the workflow (cached runs, reloads)
const AFTER_PROP = "dragnoise_after_image"; // the drag's output image, for the before/after view
const UI_KEY = "dragnoise_image"; // nodes/points.py
const PROGRESS_EVENT = "dragnoise.progress"; // nodes/bridge.py
const TRAIL = "#ffd400";

function parsePoints(text) {
  try {
    const v = JSON.parse(text || "[]");
    if (!Array.isArray(v)) return null;
    return v.filter((p) => p && Array.isArray(p.handle) && Array.isArray(p.target))
      .map((p) => ({ handle: [Number(p.handle[0]), Number(p.handle[1])],
                     target: [Number(p.target[0]), Number(p.target[1])] }));
  } catch {
    return null;
  }
}

const dumpPoints = (pts) => JSON.stringify(pts.map((p) => ({ handle: [...p.handle], target: [...p.target] })));

// "sub/name.png [input]" -> /view URL of that file
function viewURL(value, defaultType = "input") {
  if (typeof value !== "string" || !value) return null;
  let type = defaultType;
  const m = value.match(/^(.*) \[(input|output|temp)\]$/);
  if (m) { value = m[1]; type = m[2]; }
  const cut = value.lastIndexOf("/");
  const subfolder = cut >= 0 ? value.slice(0, cut) : "";
  const filename = cut >= 0 ? value.slice(cut + 1) : value;
  const q = new URLSearchParams({ filename, type, subfolder });
  return api.apiURL(`/view?${q}`);
}

// Let the frontend see a property change now: it stores the open workflow (restored on reload)
// when its change tracker notices one, which otherwise waits for the next mouse or key event.
function markChanged() {
  try { app.extensionManager?.workflow?.activeWorkflow?.changeTracker?.checkState?.(); } catch {}
}

// {filename, subfolder, type} of a saved image -> /view URL
function fileURL(im) {
  if (!im?.filename) return null;
  const q = new URLSearchParams({ filename: im.filename, type: im.type ?? "temp", subfolder: im.subfolder ?? "" });
  return api.apiURL(`/view?${q}`);
}

// The node feeding input `name` of `node`, through reroutes.
function inputNode(node, name) {
  const slot = node.inputs?.findIndex((i) => i.name === name) ?? -1;
  if (slot < 0 || !node.graph) return null;
  try {
    let src = node.getInputNode?.(slot);
    for (let hops = 0; src && hops < 8 && /reroute/i.test(src.type ?? ""); hops++) src = src.getInputNode?.(0);
    return src ?? null;
  } catch {
    return null; // not (yet) in a graph
  }
}

// Does `node` descend from `from` (through any links)?
function descends(node, from) {
  const seen = new Set(), todo = [from];
  while (todo.length) {
    const n = todo.pop();
    if (!n || seen.has(n.id)) continue;
    seen.add(n.id);
    if (n !== from && n.id === node.id) return true;
    (n.outputs ?? []).forEach((_, i) => { try { todo.push(...(n.getOutputNodes?.(i) ?? [])); } catch {} });
  }
  return false;
}

// The file picked in an upstream LoadImage-like node (through reroutes), if any.
function upstreamImageURL(node) {
  const src = inputNode(node, "image");
  if (!src) return null;
  const w = src.widgets?.find((w) => w.name === "image" && typeof w.value === "string");
  return w ? viewURL(w.value) : null;
}

class PointEditor {
  constructor(node, pointsWidget) {
    this.node = node;
    this.pw = pointsWidget;
    this.img = null; // HTMLImageElement once loaded
    this.imgURL = null;
    this.executedURL = null; // what its last run showed (properties[IMAGE_PROP] after a reload)
    this.afterURL = null;
    this.after = null; // HTMLImageElement of the drag's output, once loaded
    this.showAfter = false;
    this.live = null; // {prompt_id, step, total, loss, trails: [[x, y], ...] per pair, targets, done}
    this.pending = null; // [x, y] handle waiting for its target
    this.selected = -1;
    this.drag = null; // {pair, key, moved, before}
    this.undoStack = [];
    this.lastText = null;
    this.pts = [];

    const root = (this.root = document.createElement("div"));
    root.className = "dragnoise-points-editor";
    root.style.cssText = "display:flex;flex-direction:column;gap:3px;width:100%;height:100%;box-sizing:border-box;" +
      "font:11px sans-serif;color:#ddd;min-height:0;";
    const bar = document.createElement("div");
    bar.style.cssText = "display:flex;gap:4px;align-items:center;flex:0 0 auto;";
    const button = (label, title, fn) => {
      const b = document.createElement("button");
      b.textContent = label;
      b.title = title;
      b.className = `dragnoise-${label.toLowerCase()}`;
      b.style.cssText = "font:11px sans-serif;padding:1px 6px;cursor:pointer;background:#333;color:#eee;" +
        "border:1px solid #555;border-radius:3px;";
      b.addEventListener("pointerdown", (e) => e.stopPropagation());
      b.addEventListener("click", (e) => { e.stopPropagation(); fn(); this.keys.focus({ preventScroll: true }); });
      bar.append(b);
      return b;
    };
    button("Undo", "Undo the last change (Ctrl+Z)", () => this.undo());
    button("Clear", "Remove all points", () => this.clear());
    this.toggle = button("After", "Show the drag's result with the tracked handles (toggle)", () => this.flip());
    this.toggle.style.display = "none";
    this.progress = document.createElement("span");
    this.progress.className = "dragnoise-progress";
    this.progress.style.cssText = "color:#ffd400;white-space:nowrap;";
    bar.append(this.progress);
    this.info = document.createElement("span");
    this.info.style.cssText = "opacity:.75;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;";
    bar.append(this.info);
    this.warning = document.createElement("div");
    this.warning.className = "dragnoise-points-warning";
    this.warning.style.cssText = "display:none;flex:0 0 auto;background:#7a4b00;color:#fff;padding:2px 4px;border-radius:3px;";

    const canvas = (this.canvas = document.createElement("canvas"));
    canvas.className = "dragnoise-points-canvas";
    canvas.dataset.nodeId = String(node.id);
    canvas.style.cssText = "flex:1 1 auto;width:100%;min-height:0;display:block;outline:none;cursor:crosshair;" +
      "background:#1b1b1b;border-radius:3px;touch-action:none;";
    // Keys go to an invisible read-only textarea: ComfyUI's global shortcuts (Delete removes the
    // node, Ctrl+Z undoes the workflow) leave text fields alone, so they reach only the editor.
    const keys = (this.keys = document.createElement("textarea"));
    keys.readOnly = true;
    keys.className = "dragnoise-points-keys";
    keys.setAttribute("aria-label", "DragNoise point editor keys");
    keys.style.cssText = "position:absolute;left:0;top:0;width:1px;height:1px;opacity:0;padding:0;border:0;" +
      "resize:none;pointer-events:none;";
    root.style.position = "relative";
    root.append(bar, this.warning, canvas, keys);
    keys.addEventListener("keydown", (e) => this.on_keydown(e));
    for (const t of ["pointerdown", "pointermove", "pointerup", "pointercancel", "contextmenu", "dblclick"]) {
      canvas.addEventListener(t, (e) => this[`on_${t}`](e));
    }
    new ResizeObserver(() => this.draw()).observe(canvas);
    this.sync();
  }

  // ---- value <-> points ----
  get text() { return String(this.pw.value ?? "[]"); }

  sync() {
    const text = this.text;
    if (text !== this.lastText) {
      this.lastText = text;
      const pts = parsePoints(text);
      this.parseError = pts === null;
      this.pts = pts ?? [];
      if (this.selected >= this.pts.length) this.selected = -1;
    }
    const url = this.imageURL();
    if (url && url !== this.imgURL) this.load(url);
    this.draw();
  }

  // an upstream LoadImage wins (it is live); else what the node last ran on, kept in its properties
  // (set by configure after creation, so read here) for cached runs and reloads
  imageURL() {
    return upstreamImageURL(this.node) ?? this.executedURL ?? fileURL(this.node.properties?.[IMAGE_PROP]);
  }

  commit(pts, before = this.text) {
    const text = dumpPoints(pts);
    if (text === before) return;
    this.undoStack.push(before);
    if (this.undoStack.length > 100) this.undoStack.shift();
    this.live = null; // the trails belong to the points they were run with
    this.setText(text);
    if (this.img) this.node.properties[SIZE_PROP] = [this.img.naturalWidth, this.img.naturalHeight];
  }

  setText(text) {
    this.pw.value = text;
    this.pw.callback?.(text);
    this.lastText = null;
    this.node.setDirtyCanvas?.(true, true);
    this.node.graph?.change?.();
    this.sync();
  }

  undo() {
    if (this.pending) { this.pending = null; this.draw(); return; }
    const prev = this.undoStack.pop();
    if (prev !== undefined) { this.selected = -1; this.setText(prev); }
  }

  clear() {
    this.pending = null;
    this.selected = -1;
    this.commit([]);
    this.draw();
  }

  remove(i) {
    const pts = this.pts.map((p) => ({ ...p }));
    pts.splice(i, 1);
    this.selected = -1;
    this.commit(pts);
  }

  // ---- image ----
  load(url) {
    this.imgURL = url;
    const img = new Image();
    img.onload = () => {
      if (this.imgURL !== url) return;
      this.img = img;
      this.checkSize();
      this.draw();
    };
    img.onerror = () => { if (this.imgURL === url) { this.img = null; this.draw(); } };
    img.src = url;
  }

  setExecuted(images) {
    const im = images?.[0];
    if (!im?.filename) return;
    this.node.properties[IMAGE_PROP] = { filename: im.filename, subfolder: im.subfolder ?? "", type: im.type ?? "temp" };
    this.executedURL = fileURL(im);
    markChanged();
    // an upstream LoadImage wins (it is live); otherwise show what the node just ran on
    if (!upstreamImageURL(this.node)) this.load(this.executedURL);
  }

  // the drag's output (an image node downstream of this one) for the before/after view
  setAfter(im) {
    this.node.properties[AFTER_PROP] = { filename: im.filename, subfolder: im.subfolder ?? "", type: im.type ?? "temp" };
    this.afterURL = fileURL(im);
    markChanged();
    this.loadAfter();
  }

  loadAfter() {
    const url = this.afterURL ?? fileURL(this.node.properties?.[AFTER_PROP]);
    if (!url || this.after?.dataset.url === url) return;
    const img = new Image();
    img.dataset.url = url;
    img.onload = () => { if ((this.afterURL ?? url) === url) { this.after = img; this.toggle.style.display = ""; this.draw(); } };
    img.src = url;
  }

  flip() {
    this.showAfter = !this.showAfter && !!this.after;
    this.toggle.textContent = this.showAfter ? "Before" : "After";
    this.pending = null;
    this.draw();
  }

  // a live progress message of the optimizer this node feeds
  onProgress(d) {
    if (!this.live || this.live.prompt_id !== d.prompt_id) {
      this.live = { prompt_id: d.prompt_id, trails: d.start.map((p) => [p]), targets: d.targets };
    }
    const L = this.live;
    d.handles.forEach((h, i) => L.trails[i]?.push(h));
    Object.assign(L, { step: d.step, total: d.total, loss: d.loss ?? L.loss, done: !!d.done });
    this.draw();
  }

  checkSize() {
    const w = this.img.naturalWidth, h = this.img.naturalHeight;
    const prev = this.node.properties[SIZE_PROP];
    if (!this.pts.length) this.node.properties[SIZE_PROP] = [w, h];
    else if (!prev) this.node.properties[SIZE_PROP] = [w, h];
  }

  // ---- geometry: image pixels <-> element CSS pixels (zoom-independent) ----
  layout() {
    const cw = this.canvas.clientWidth, ch = this.canvas.clientHeight;
    if (!this.img) return { cw, ch, s: 1, ox: 0, oy: 0 };
    const iw = this.img.naturalWidth, ih = this.img.naturalHeight;
    const s = Math.min(cw / iw, ch / ih);
    return { cw, ch, s, ox: (cw - iw * s) / 2, oy: (ch - ih * s) / 2 };
  }

  // event -> integer image pixel (the pixel under the pointer), clamped into the image
  toImage(e) {
    const r = this.canvas.getBoundingClientRect();
    const L = this.layout();
    const x = ((e.clientX - r.left) * L.cw) / r.width, y = ((e.clientY - r.top) * L.ch) / r.height;
    const iw = this.img.naturalWidth, ih = this.img.naturalHeight;
    const px = Math.floor((x - L.ox) / L.s), py = Math.floor((y - L.oy) / L.s);
    return { px: Math.min(iw - 1, Math.max(0, px)), py: Math.min(ih - 1, Math.max(0, py)),
             inside: px >= 0 && py >= 0 && px < iw && py < ih, x, y };
  }

  toCSS([px, py], L = this.layout()) {
    return [L.ox + (px + 0.5) * L.s, L.oy + (py + 0.5) * L.s];
  }

  hit(e) {
    const r = this.canvas.getBoundingClientRect();
    const L = this.layout();
    const k = r.width / L.cw; // screen px per CSS px (the canvas zoom)
    const ex = e.clientX - r.left, ey = e.clientY - r.top;
    let best = null, bestD = HIT;
    this.pts.forEach((p, i) => {
      for (const key of ["target", "handle"]) {
        const [cx, cy] = this.toCSS(p[key], L);
        const d = Math.hypot(cx * k - ex, cy * k - ey);
        if (d <= bestD) { best = { pair: i, key }; bestD = d; }
      }
    });
    return best;
  }

  // ---- events ----
  on_pointerdown(e) {
    e.stopPropagation();
    this.keys.focus({ preventScroll: true });
    if (e.button !== 0 || !this.img || this.showAfter) return; // the result is for looking, not editing
    e.preventDefault();
    const h = this.hit(e);
    if (h) {
      this.selected = h.pair;
      this.drag = { ...h, moved: false, before: this.text, pts: this.pts.map((p) => ({ handle: [...p.handle], target: [...p.target] })) };
      this.canvas.setPointerCapture?.(e.pointerId);
      this.draw();
      return;
    }
    const q = this.toImage(e);
    if (!q.inside) return;
    if (!this.pending) {
      this.pending = [q.px, q.py];
      this.selected = -1;
      this.draw();
    } else {
      if (q.px === this.pending[0] && q.py === this.pending[1]) return; // zero-length drag is refused by the node
      const pts = [...this.pts, { handle: this.pending, target: [q.px, q.py] }];
      this.pending = null;
      this.selected = pts.length - 1;
      this.commit(pts);
    }
  }

  on_pointermove(e) {
    if (!this.drag) {
      this.canvas.style.cursor = this.img && this.hit(e) ? "move" : "crosshair";
      return;
    }
    e.stopPropagation();
    const q = this.toImage(e);
    const p = this.drag.pts[this.drag.pair];
    if (p[this.drag.key][0] === q.px && p[this.drag.key][1] === q.py) return;
    p[this.drag.key] = [q.px, q.py];
    this.drag.moved = true;
    this.pts = this.drag.pts; // shown live, written on release
    this.draw();
  }

  on_pointerup(e) {
    if (!this.drag) return;
    e.stopPropagation();
    const d = this.drag;
    this.drag = null;
    this.canvas.releasePointerCapture?.(e.pointerId);
    if (d.moved) this.commit(d.pts, d.before);
    else this.draw();
  }

  on_pointercancel(e) { this.on_pointerup(e); }

  on_dblclick(e) { e.stopPropagation(); }

  on_contextmenu(e) {
    e.preventDefault();
    e.stopPropagation();
    const h = this.hit(e);
    if (h) this.remove(h.pair);
    else if (this.pending) { this.pending = null; this.draw(); }
  }

  on_keydown(e) {
    const key = e.key;
    let used = true;
    if ((key === "Delete" || key === "Backspace") && this.selected >= 0) this.remove(this.selected);
    else if ((key === "z" || key === "Z") && (e.ctrlKey || e.metaKey)) this.undo();
    else if (key === "Escape") { this.pending = null; this.selected = -1; this.draw(); }
    else used = false;
    if (used) { e.preventDefault(); e.stopPropagation(); }
  }

  // ---- drawing ----
  draw() {
    const c = this.canvas;
    c.dataset.nodeId = String(this.node.id); // the id is assigned after creation (graph add/configure)
    const dpr = window.devicePixelRatio || 1;
    const L = this.layout();
    if (!L.cw || !L.ch) return;
    // render at the on-screen resolution so arrows stay sharp when the graph is zoomed in
    const r = c.getBoundingClientRect();
    const k = Math.max(1, Math.min(4, (r.width / L.cw) * dpr || dpr));
    const W = Math.round(L.cw * k), H = Math.round(L.ch * k);
    if (c.width !== W || c.height !== H) { c.width = W; c.height = H; }
    const g = c.getContext("2d");
    g.setTransform(k, 0, 0, k, 0, 0);
    g.clearRect(0, 0, L.cw, L.ch);
    this.updateText();
    if (!this.img) {
      g.fillStyle = "#888";
      g.font = "12px sans-serif";
      g.textAlign = "center";
      g.fillText("Run the graph to see its image here", L.cw / 2, L.ch / 2);
      return;
    }
    g.imageSmoothingEnabled = L.s < 1;
    const shown = this.showAfter && this.after ? this.after : this.img;
    g.drawImage(shown, L.ox, L.oy, this.img.naturalWidth * L.s, this.img.naturalHeight * L.s);
    if (!this.showAfter) {
      this.pts.forEach((p, i) => this.drawPair(g, L, p, i + 1, i === this.selected));
      if (this.pending) this.drawDot(g, this.toCSS(this.pending, L), HANDLE, true, this.pts.length + 1);
    }
    this.drawTrails(g, L);
  }

  // each handle's path so far (tracked positions, image pixels) and where it is now
  drawTrails(g, L) {
    const live = this.live;
    if (!live) return;
    live.trails.forEach((trail, i) => {
      const pts = trail.map((p) => this.toCSS(p, L));
      g.lineWidth = 2;
      g.strokeStyle = TRAIL;
      g.setLineDash([4, 3]);
      g.beginPath();
      pts.forEach(([x, y], k) => (k ? g.lineTo(x, y) : g.moveTo(x, y)));
      g.stroke();
      g.setLineDash([]);
      if (this.showAfter) this.drawDot(g, this.toCSS(live.targets[i], L), TARGET, false);
      const [x, y] = pts[pts.length - 1];
      g.beginPath();
      g.arc(x, y, 6, 0, Math.PI * 2);
      g.lineWidth = 2.5;
      g.strokeStyle = "#000";
      g.stroke();
      g.lineWidth = 1.5;
      g.strokeStyle = TRAIL;
      g.stroke();
    });
  }

  drawDot(g, [x, y], color, ring, label) {
    g.beginPath();
    g.arc(x, y, 5, 0, Math.PI * 2);
    g.fillStyle = color;
    g.fill();
    g.lineWidth = ring ? 2 : 1.2;
    g.strokeStyle = ring ? "#ffeb3b" : "#fff";
    g.stroke();
    if (label !== undefined) {
      g.font = "bold 11px sans-serif";
      g.textAlign = "left";
      g.lineWidth = 3;
      g.strokeStyle = "#000";
      g.strokeText(String(label), x + 6, y - 6);
      g.fillStyle = "#fff";
      g.fillText(String(label), x + 6, y - 6);
    }
  }

  drawPair(g, L, p, n, selected) {
    const [hx, hy] = this.toCSS(p.handle, L), [tx, ty] = this.toCSS(p.target, L);
    const a = Math.atan2(ty - hy, tx - hx), len = Math.hypot(tx - hx, ty - hy);
    g.lineWidth = selected ? 3 : 2;
    g.strokeStyle = selected ? "#ffeb3b" : "#fff";
    if (len > 12) {
      const ex = tx - Math.cos(a) * 6, ey = ty - Math.sin(a) * 6;
      g.beginPath();
      g.moveTo(hx, hy);
      g.lineTo(ex, ey);
      g.stroke();
      g.beginPath();
      g.moveTo(ex, ey);
      g.lineTo(ex - 8 * Math.cos(a - 0.45), ey - 8 * Math.sin(a - 0.45));
      g.lineTo(ex - 8 * Math.cos(a + 0.45), ey - 8 * Math.sin(a + 0.45));
      g.closePath();
      g.fillStyle = g.strokeStyle;
      g.fill();
    }
    this.drawDot(g, [hx, hy], HANDLE, selected, n);
    this.drawDot(g, [tx, ty], TARGET, selected);
  }

  updateText() {
    const img = this.img;
    let warn = "";
    if (this.parseError) warn = "The points text is not a JSON list; fix it or press Clear.";
    else if (img) {
      const w = img.naturalWidth, h = img.naturalHeight, prev = this.node.properties[SIZE_PROP];
      const outside = this.pts.filter((p) => [p.handle, p.target].some(([x, y]) => x < 0 || y < 0 || x >= w || y >= h)).length;
      if (this.pts.length && prev && (prev[0] !== w || prev[1] !== h)) {
        warn = `Image size changed: points were placed on ${prev[0]}x${prev[1]}, the image is now ${w}x${h}. ` +
          "Check the points (they are kept in pixels) or press Clear.";
      }
      if (outside) warn += `${warn ? " " : ""}${outside} pair(s) fall outside the ${w}x${h} image.`;
    }
    this.warning.textContent = warn;
    this.warning.style.display = warn ? "block" : "none";
    const live = this.live;
    this.progress.textContent = live
      ? `${live.done ? "done" : "iter"} ${live.step}/${live.total}` + (live.loss != null ? ` · loss ${live.loss.toPrecision(3)}` : "")
      : "";
    const n = this.pts.length;
    this.info.textContent = img
      ? `${img.naturalWidth}x${img.naturalHeight} · ${n} pair${n === 1 ? "" : "s"}` +
        (this.pending ? " · click the target" : n ? "" : " · click a handle, then its target")
      : "no image";
  }
}

// Every point editor whose node feeds (through its points input) the node that sent `id`.
function editorsOf(id) {
  const node = app.graph?.getNodeById?.(Number(id)) ?? app.graph?.getNodeById?.(id);
  const src = node && inputNode(node, "points");
  return src?.dragnoiseEditor ? [src.dragnoiseEditor] : [];
}

function pointEditors() {
  return (app.graph?._nodes ?? app.graph?.nodes ?? []).filter((n) => n.dragnoiseEditor).map((n) => n.dragnoiseEditor);
}

app.registerExtension({
  name: "DragNoise.PointEditor",
  setup() {
    api.addEventListener(PROGRESS_EVENT, (e) => editorsOf(e.detail?.node).forEach((ed) => ed.onProgress(e.detail)));
    // the drag's result: the first image an executed node downstream of a points node shows
    api.addEventListener("executed", (e) => {
      const d = e.detail, im = d?.output?.images?.[0];
      const node = im && app.graph?.getNodeById?.(Number(d.display_node ?? d.node));
      if (!node) return;
      for (const ed of pointEditors()) if (descends(node, ed.node)) ed.setAfter(im);
    });
  },
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData?.name !== NODE) return;

    const onNodeCreated = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const r = onNodeCreated?.apply(this, arguments);
      const pw = this.widgets?.find((w) => w.name === "points");
      if (!pw) return r;
      this.properties ??= {};
      const editor = (this.dragnoiseEditor = new PointEditor(this, pw));
      const widget = this.addDOMWidget("points_editor", "dragnoise_points", editor.root, {
        serialize: false,
        hideOnZoom: false,
        getValue: () => undefined,
        setValue: () => {},
        getMinHeight: () => 300,
      });
      widget.serialize = false; // not a node input: stays out of widgets_values and the API prompt
      widget.computeLayoutSize = () => ({ minHeight: 300, minWidth: 280 });
      editor.widget = widget;
      const cb = pw.callback;
      pw.callback = function () {
        const v = cb?.apply(this, arguments);
        queueMicrotask(() => editor.sync());
        return v;
      };
      // the string can change behind our back (workflow load, API, text edit): check cheaply
      editor.timer = setInterval(() => {
        if (!editor.root.isConnected) return;
        if (editor.text !== editor.lastText || editor.imageURL() !== editor.imgURL) editor.sync();
        editor.loadAfter();
      }, 300);
      const size = this.computeSize?.() ?? this.size;
      this.setSize?.([Math.max(size[0], 300), Math.max(size[1], 360)]);
      return r;
    };

    const onRemoved = nodeType.prototype.onRemoved;
    nodeType.prototype.onRemoved = function () {
      clearInterval(this.dragnoiseEditor?.timer);
      return onRemoved?.apply(this, arguments);
    };

    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (output) {
      const r = onExecuted?.apply(this, arguments);
      this.dragnoiseEditor?.setExecuted(output?.[UI_KEY] ?? output?.images);
      return r;
    };

    const onConnectionsChange = nodeType.prototype.onConnectionsChange;
    nodeType.prototype.onConnectionsChange = function () {
      const r = onConnectionsChange?.apply(this, arguments);
      queueMicrotask(() => this.dragnoiseEditor?.sync());
      return r;
    };
  },
});
