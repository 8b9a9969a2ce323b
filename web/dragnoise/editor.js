// The point editor on the Points node: click a handle, then its target; drag points to move them;
// paint / erase the editable region with the brush. Everything it edits is written to the node's
// `points` string (value.js), which stays the single source of truth.
import { layout, toCSS, toImage, zoomOf } from "./geometry.js";
import { HANDLE, drawBrush, drawDot, drawPair, drawTrails } from "./draw.js";
import { History } from "./history.js";
import { RegionRaster } from "./region.js";
import { copyPairs, dumpValue, parseValue } from "./value.js";

const HIT = 9; // screen pixels
export const SIZE_PROP = "dragnoise_image_size";
const PROGRESS = { running: "#ffd400", done: "#9be39b", stopped: "#9a9a9a" };
export const KEYS = "P points · B paint · E erase · [ ] brush size · Ctrl+Z undo · Delete removes the selected pair";

function button(bar, cls, label, title, fn, after) {
  const b = document.createElement("button");
  b.textContent = label;
  b.title = title;
  b.className = `dragnoise-${cls}`;
  b.style.cssText = "font:11px sans-serif;padding:1px 6px;cursor:pointer;background:#333;color:#eee;" +
    "border:1px solid #555;border-radius:3px;";
  b.addEventListener("pointerdown", (e) => e.stopPropagation());
  b.addEventListener("click", (e) => { e.stopPropagation(); fn(); after(); });
  bar.append(b);
  return b;
}

export class PointEditor {
  // source: {imageURL(), workflowKey(), changed()} from the ComfyUI side (dragnoise_points.js)
  constructor(node, pointsWidget, source) {
    this.node = node;
    this.pw = pointsWidget;
    this.source = source;
    this.img = null; // HTMLImageElement once loaded
    this.imgURL = null;
    this.afterURL = null;
    this.after = null; // HTMLImageElement of the drag's output, once loaded
    this.showAfter = false;
    this.live = null; // {prompt_id, step, total, loss, trails: [[x, y], ...] per pair, targets, done, stopped}
    this.pending = null; // [x, y] handle waiting for its target
    this.selected = -1;
    this.drag = null; // {pair, key, moved, before, pts}
    this.stroke = null; // the region stroke being painted: {erase, radius, points}
    this.hover = null; // the pointer in CSS pixels, for the brush outline
    this.mode = "points"; // or "paint", "erase"
    this.brush = 0; // radius in image pixels; 0: not yet chosen for this image
    this.history = new History(() => source.workflowKey(), () => node.id);
    this.lastText = null;
    this.pts = [];
    this.region = null; // {size, strokes} or null
    this.raster = new RegionRaster();
    this.rasterKey = null;

    const root = (this.root = document.createElement("div"));
    root.className = "dragnoise-points-editor";
    root.style.cssText = "display:flex;flex-direction:column;gap:3px;width:100%;height:100%;box-sizing:border-box;" +
      "font:11px sans-serif;color:#ddd;min-height:0;position:relative;";
    const refocus = () => this.keys.focus({ preventScroll: true });
    const bar = document.createElement("div");
    bar.style.cssText = "display:flex;gap:4px;align-items:center;flex:0 0 auto;";
    button(bar, "undo", "Undo", "Undo the last change: a point or a brush stroke (Ctrl+Z)", () => this.undo(), refocus);
    button(bar, "clear", "Clear", "Remove all points (the painted region stays)", () => this.clear(), refocus);
    this.toggle = button(bar, "after", "After", "Show the drag's result with the tracked handles (toggle)", () => this.flip(), refocus);
    this.toggle.style.display = "none";
    this.progress = document.createElement("span");
    this.progress.className = "dragnoise-progress";
    this.progress.style.cssText = "white-space:nowrap;";
    this.info = document.createElement("span");
    this.info.className = "dragnoise-info";
    this.info.style.cssText = "opacity:.75;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;";
    bar.append(this.progress, this.info);

    // the brush: mode, size, clear
    const tools = document.createElement("div");
    tools.className = "dragnoise-tools";
    tools.style.cssText = "display:flex;gap:4px;align-items:center;flex:0 0 auto;";
    this.modeButtons = {
      points: button(tools, "mode-points", "Points", "Place and move handle/target pairs (P)", () => this.setMode("points"), refocus),
      paint: button(tools, "mode-paint", "Paint", "Paint the region that may change; outside it the image is kept (B)", () => this.setMode("paint"), refocus),
      erase: button(tools, "mode-erase", "Erase", "Erase from the painted region (E; or right-drag while painting)", () => this.setMode("erase"), refocus),
    };
    const size = (this.sizeInput = document.createElement("input"));
    size.type = "range";
    size.min = "1";
    size.max = "128";
    size.className = "dragnoise-brush-size";
    size.title = "Brush radius in image pixels ([ and ])";
    size.style.cssText = "width:80px;min-width:40px;flex:0 1 auto;";
    for (const t of ["pointerdown", "mousedown", "wheel"]) size.addEventListener(t, (e) => e.stopPropagation());
    size.addEventListener("input", () => { this.brush = Number(size.value); this.updateText(); this.draw(); });
    size.addEventListener("change", refocus);
    this.sizeLabel = document.createElement("span");
    this.sizeLabel.style.cssText = "white-space:nowrap;min-width:34px;";
    tools.append(size, this.sizeLabel);
    button(tools, "clear-region", "Clear region", "Remove the painted region: the whole image may change again", () => this.clearRegion(), refocus);

    this.warning = document.createElement("div");
    this.warning.className = "dragnoise-points-warning";
    // over the bottom of the image, not in the flow: a warning coming or going never moves the image
    // under the pointer (it can change in the middle of a brush stroke)
    this.warning.style.cssText = "display:none;position:absolute;left:4px;right:4px;bottom:4px;z-index:1;" +
      "background:rgba(122,75,0,.92);color:#fff;padding:2px 4px;border-radius:3px;pointer-events:none;";

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
    keys.setAttribute("aria-label", `DragNoise point editor keys: ${KEYS}`);
    keys.style.cssText = "position:absolute;left:0;top:0;width:1px;height:1px;opacity:0;padding:0;border:0;" +
      "resize:none;pointer-events:none;";
    root.append(bar, tools, this.warning, canvas, keys);
    keys.addEventListener("keydown", (e) => this.on_keydown(e));
    for (const t of ["pointerdown", "pointermove", "pointerup", "pointercancel", "pointerleave", "contextmenu", "dblclick"]) {
      canvas.addEventListener(t, (e) => this[`on_${t}`](e));
    }
    new ResizeObserver(() => this.draw()).observe(canvas);
    this.setMode("points");
    this.sync();
  }

  // ---- value <-> state ----
  get text() { return String(this.pw.value ?? "[]"); }

  sync() {
    const text = this.text;
    if (text !== this.lastText) {
      this.lastText = text;
      const v = parseValue(text);
      this.parseError = v === null;
      this.pts = v?.pairs ?? [];
      this.region = v?.region ?? null;
      if (this.selected >= this.pts.length) this.selected = -1;
    }
    const url = this.source.imageURL();
    if (url && url !== this.imgURL) this.load(url);
    this.rebuildRegion();
    this.draw();
  }

  // the overlay follows the region's strokes, drawn at the image's size
  rebuildRegion() {
    const w = this.img?.naturalWidth ?? 0, h = this.img?.naturalHeight ?? 0;
    const key = `${w}x${h}:${JSON.stringify(this.region?.strokes ?? [])}`;
    if (key === this.rasterKey || !w) return;
    this.rasterKey = key;
    this.raster.build(this.regionFits() ? this.region : null, w, h);
  }

  regionFits() {
    const r = this.region;
    return !r || (this.img && r.size[0] === this.img.naturalWidth && r.size[1] === this.img.naturalHeight);
  }

  commit(pts, region = this.region, before = this.text) {
    const text = dumpValue({ pairs: pts, region });
    if (text === before) return;
    this.history.push(before, text);
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
    this.source.changed(); // the open tab's saved state follows at once (a tab switch restores it)
    this.sync();
  }

  undo() {
    if (this.pending) { this.pending = null; this.draw(); return; }
    const prev = this.history.pop(this.text);
    if (prev !== undefined) { this.selected = -1; this.setText(prev); }
  }

  clear() {
    this.pending = null;
    this.selected = -1;
    this.commit([]);
    this.draw();
  }

  clearRegion() {
    this.stroke = null;
    this.commit(this.pts, null);
    this.draw();
  }

  remove(i) {
    const pts = copyPairs(this.pts);
    pts.splice(i, 1);
    this.selected = -1;
    this.commit(pts);
  }

  setMode(mode) {
    this.mode = mode;
    this.pending = null;
    for (const [m, b] of Object.entries(this.modeButtons)) {
      b.style.background = m === mode ? "#2e6b45" : "#333";
      b.setAttribute("aria-pressed", String(m === mode));
    }
    this.canvas.style.cursor = mode === "points" ? "crosshair" : "none";
    this.updateText();
    this.draw();
  }

  setBrush(r) {
    this.brush = Math.max(1, Math.min(Number(this.sizeInput.max), Math.round(r)));
    this.sizeInput.value = String(this.brush);
    this.updateText();
    this.draw();
  }

  // ---- image ----
  load(url) {
    this.imgURL = url;
    const img = new Image();
    img.onload = () => {
      if (this.imgURL !== url) return;
      this.img = img;
      this.checkSize();
      if (!this.brush) this.setBrush(Math.max(4, Math.min(img.naturalWidth, img.naturalHeight) / 12));
      this.rebuildRegion();
      this.draw();
    };
    img.onerror = () => { if (this.imgURL === url) { this.img = null; this.draw(); } };
    img.src = url;
  }

  setAfter(url) {
    if (!url || this.afterURL === url) return; // loading or loaded
    this.afterURL = url;
    const img = new Image();
    img.dataset.url = url;
    img.onload = () => { if (this.afterURL === url) { this.after = img; this.toggle.style.display = ""; this.draw(); } };
    img.src = url;
  }

  flip() {
    this.showAfter = !this.showAfter && !!this.after;
    this.toggle.textContent = this.showAfter ? "Before" : "After";
    this.pending = null;
    this.draw();
  }

  // ---- live progress of the optimizer this node feeds ----
  onProgress(d) {
    if (this.live?.prompt_id === d.prompt_id && this.live.stopped) return;
    if (!this.live || this.live.prompt_id !== d.prompt_id) {
      this.live = { prompt_id: d.prompt_id, trails: d.start.map((p) => [p]), targets: d.targets };
    }
    const L = this.live;
    d.handles.forEach((h, i) => L.trails[i]?.push(h));
    Object.assign(L, { step: d.step, total: d.total, loss: d.loss ?? L.loss, done: !!d.done });
    this.draw();
  }

  // the prompt stopped before the optimizer said it was done (Cancel, or an error)
  onStopped(promptId) {
    if (!this.live || this.live.done || this.live.stopped || (promptId && this.live.prompt_id !== promptId)) return;
    this.live.stopped = true;
    this.draw();
  }

  checkSize() {
    const w = this.img.naturalWidth, h = this.img.naturalHeight;
    if (!this.pts.length || !this.node.properties[SIZE_PROP]) this.node.properties[SIZE_PROP] = [w, h];
  }

  hit(e) {
    const r = this.canvas.getBoundingClientRect();
    const L = layout(this.canvas, this.img);
    const k = zoomOf(this.canvas);
    const ex = e.clientX - r.left, ey = e.clientY - r.top;
    let best = null, bestD = HIT;
    this.pts.forEach((p, i) => {
      for (const key of ["target", "handle"]) {
        const [cx, cy] = toCSS(p[key], L);
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
    if (!this.img || this.showAfter) return; // the result is for looking, not editing
    if (this.mode !== "points") {
      if (e.button === 0 || e.button === 2) { e.preventDefault(); this.startStroke(e, this.mode === "erase" || e.button === 2); }
      return;
    }
    if (e.button !== 0) return;
    e.preventDefault();
    const h = this.hit(e);
    if (h) {
      this.selected = h.pair;
      this.drag = { ...h, moved: false, before: this.text, pts: copyPairs(this.pts) };
      this.canvas.setPointerCapture?.(e.pointerId);
      this.draw();
      return;
    }
    const q = toImage(this.canvas, this.img, e);
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

  startStroke(e, erase) {
    if (!this.regionFits()) { this.updateText(); return; } // painted on another image: the warning says to clear it
    const q = toImage(this.canvas, this.img, e);
    this.stroke = { erase, radius: this.brush, points: [[q.px, q.py]], before: this.text };
    this.raster.segment([q.px, q.py], [q.px, q.py], this.brush, erase ? 0 : 1);
    this.raster.render();
    this.canvas.setPointerCapture?.(e.pointerId);
    this.draw();
  }

  on_pointermove(e) {
    const r = this.canvas.getBoundingClientRect(), k = zoomOf(this.canvas);
    this.hover = [(e.clientX - r.left) / k, (e.clientY - r.top) / k];
    if (this.stroke) {
      e.stopPropagation();
      const q = toImage(this.canvas, this.img, e), st = this.stroke, last = st.points[st.points.length - 1];
      // a point every quarter radius: smooth enough, and a long stroke stays a few hundred numbers
      if (Math.hypot(q.px - last[0], q.py - last[1]) >= Math.max(1, st.radius / 4)) this.extend([q.px, q.py]);
      this.draw();
      return;
    }
    if (this.mode !== "points") { this.draw(); return; }
    if (!this.drag) {
      this.canvas.style.cursor = this.img && this.hit(e) ? "move" : "crosshair";
      return;
    }
    e.stopPropagation();
    const q = toImage(this.canvas, this.img, e);
    const p = this.drag.pts[this.drag.pair];
    if (p[this.drag.key][0] === q.px && p[this.drag.key][1] === q.py) return;
    p[this.drag.key] = [q.px, q.py];
    this.drag.moved = true;
    this.pts = this.drag.pts; // shown live, written on release
    this.draw();
  }

  extend(p) {
    const st = this.stroke, last = st.points[st.points.length - 1];
    st.points.push(p);
    this.raster.segment(last, p, st.radius, st.erase ? 0 : 1);
    this.raster.render();
  }

  on_pointerup(e) {
    if (this.stroke) {
      e.stopPropagation();
      const st = this.stroke, q = toImage(this.canvas, this.img, e), last = st.points[st.points.length - 1];
      if (q.px !== last[0] || q.py !== last[1]) this.extend([q.px, q.py]);
      this.stroke = null;
      this.canvas.releasePointerCapture?.(e.pointerId);
      const region = this.region ?? { size: [this.img.naturalWidth, this.img.naturalHeight], strokes: [] };
      const stroke = { erase: st.erase, radius: st.radius, points: st.points };
      this.commit(this.pts, { size: region.size, strokes: [...region.strokes, stroke] }, st.before);
      return;
    }
    if (!this.drag) return;
    e.stopPropagation();
    const d = this.drag;
    this.drag = null;
    this.canvas.releasePointerCapture?.(e.pointerId);
    if (d.moved) this.commit(d.pts, this.region, d.before);
    else this.draw();
  }

  on_pointercancel(e) { this.on_pointerup(e); }

  on_pointerleave() { if (!this.stroke) { this.hover = null; this.draw(); } }

  on_dblclick(e) { e.stopPropagation(); }

  on_contextmenu(e) {
    e.preventDefault();
    e.stopPropagation();
    if (this.mode !== "points") return; // right-drag erased
    const h = this.hit(e);
    if (h) this.remove(h.pair);
    else if (this.pending) { this.pending = null; this.draw(); }
  }

  on_keydown(e) {
    const key = e.key, plain = !e.ctrlKey && !e.metaKey && !e.altKey;
    let used = true;
    if ((key === "Delete" || key === "Backspace") && this.selected >= 0) this.remove(this.selected);
    else if ((key === "z" || key === "Z") && (e.ctrlKey || e.metaKey) && !e.shiftKey) this.undo();
    else if (key === "Escape") { this.pending = null; this.selected = -1; this.draw(); }
    else if (plain && (key === "p" || key === "P")) this.setMode("points");
    else if (plain && (key === "b" || key === "B")) this.setMode("paint");
    else if (plain && (key === "e" || key === "E")) this.setMode("erase");
    else if (plain && key === "[") this.setBrush(this.brush / 1.25);
    else if (plain && key === "]") this.setBrush(Math.max(this.brush + 1, this.brush * 1.25));
    else used = false;
    if (used) { e.preventDefault(); e.stopPropagation(); }
  }

  // ---- drawing ----
  draw() {
    const c = this.canvas;
    c.dataset.nodeId = String(this.node.id); // the id is assigned after creation (graph add/configure)
    const dpr = window.devicePixelRatio || 1;
    const L = layout(c, this.img);
    if (!L.cw || !L.ch) return;
    // render at the on-screen resolution so arrows stay sharp when the graph is zoomed in
    const k = Math.max(1, Math.min(4, zoomOf(c) * dpr || dpr));
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
    const iw = this.img.naturalWidth * L.s, ih = this.img.naturalHeight * L.s;
    g.imageSmoothingEnabled = L.s < 1;
    g.drawImage(this.showAfter && this.after ? this.after : this.img, L.ox, L.oy, iw, ih);
    if (!this.showAfter) {
      if (this.raster.w) { g.imageSmoothingEnabled = false; g.drawImage(this.raster.canvas, L.ox, L.oy, iw, ih); }
      this.pts.forEach((p, i) => drawPair(g, L, p, i + 1, i === this.selected));
      if (this.pending) drawDot(g, toCSS(this.pending, L), HANDLE, true, this.pts.length + 1);
    }
    drawTrails(g, L, this.live, this.showAfter);
    if (this.mode !== "points" && this.hover && !this.showAfter) drawBrush(g, this.hover, this.brush * L.s, this.mode === "erase" || this.stroke?.erase);
  }

  updateText() {
    const img = this.img;
    const warn = [];
    if (this.parseError) warn.push("The points text is not a JSON list or {pairs, region}; fix it or press Clear.");
    else if (img) {
      const w = img.naturalWidth, h = img.naturalHeight, prev = this.node.properties[SIZE_PROP];
      const outside = this.pts.filter((p) => [p.handle, p.target].some(([x, y]) => x < 0 || y < 0 || x >= w || y >= h)).length;
      if (this.pts.length && prev && (prev[0] !== w || prev[1] !== h)) {
        warn.push(`Image size changed: points were placed on ${prev[0]}x${prev[1]}, the image is now ${w}x${h}. ` +
          "Check the points (they are kept in pixels) or press Clear.");
      }
      if (outside) warn.push(`${outside} pair(s) fall outside the ${w}x${h} image.`);
      if (!this.regionFits()) {
        warn.push(`The region was painted on a ${this.region.size[0]}x${this.region.size[1]} image; this one is ` +
          `${w}x${h}: press Clear region and paint it again.`);
      } else if (this.raster.count) {
        const out = this.pts.map((p, i) => (this.raster.at(Math.round(p.handle[0]), Math.round(p.handle[1])) ? 0 : i + 1)).filter(Boolean);
        if (out.length) warn.push(`Handle ${out.join(", ")} is outside the painted region, so it could not move: paint over it.`);
      }
    }
    this.warning.textContent = warn.join(" ");
    this.warning.style.display = warn.length ? "block" : "none";
    const live = this.live;
    const state = !live ? "" : live.done ? "done" : live.stopped ? "stopped" : "running";
    this.progress.dataset.state = state;
    this.progress.style.color = PROGRESS[state] ?? "";
    this.progress.textContent = live
      ? `${{ done: "done", stopped: "stopped at iter", running: "iter" }[state]} ${live.step}/${live.total}` +
        (live.loss != null ? ` · loss ${live.loss.toPrecision(3)}` : "")
      : "";
    this.sizeLabel.textContent = `${this.brush} px`;
    const n = this.pts.length;
    const hint = this.mode !== "points" ? ` · ${this.mode === "paint" ? "paint where it may change" : "erase"} (P: points)`
      : this.pending ? " · click the target" : n ? "" : " · click a handle, then its target";
    this.info.textContent = img
      ? `${img.naturalWidth}x${img.naturalHeight} · ${n} pair${n === 1 ? "" : "s"}` +
        (this.raster.count ? " · region" : "") + hint
      : "no image";
  }
}
