// The editable region as a raster, by the rule dragnoise/points.py applies: strokes in order, a paint
// stroke sets every pixel (x, y) within `radius` of its polyline, an erase stroke clears it. Each
// segment's capsule meets a pixel row in one span, computed as the engine computes it, so the overlay
// shows the MASK the node outputs.

const EPS = 1e-9;

// [lo, hi] of x on row y for the capsule of segment a-b with radius r, or null
function span(ax, ay, bx, by, r, y) {
  let lo = Infinity, hi = -Infinity;
  const add = (l, h) => { if (l <= h) { lo = Math.min(lo, l); hi = Math.max(hi, h); } };
  for (const [px, py] of [[ax, ay], [bx, by]]) { // the discs at the ends
    const d = y - py;
    if (d * d <= r * r) { const w = Math.sqrt(Math.max(0, r * r - d * d)); add(px - w, px + w); }
  }
  const dx = bx - ax, dy = by - ay, len = Math.hypot(dx, dy);
  if (len > 0) { // the body: 0 <= (x-ax) ux + c uy <= len and |c ux - (x-ax) uy| <= r
    const ux = dx / len, uy = dy / len, c = y - ay;
    let bl = -Infinity, bh = Infinity, ok = true;
    for (const [coef, low, high] of [[ux, -c * uy, len - c * uy], [-uy, -r - c * ux, r - c * ux]]) {
      if (coef !== 0) {
        const e1 = low / coef, e2 = high / coef;
        bl = Math.max(bl, Math.min(e1, e2));
        bh = Math.min(bh, Math.max(e1, e2));
      } else if (!(low <= 0 && 0 <= high)) ok = false;
    }
    if (ok) add(ax + bl, ax + bh);
  }
  return lo <= hi ? [lo, hi] : null;
}

export class RegionRaster {
  constructor() {
    this.w = 0; this.h = 0;
    this.mask = new Uint8Array(0);
    this.canvas = document.createElement("canvas"); // the overlay, at image size
    this.count = 0; // painted pixels
  }

  reset(w, h) {
    if (w !== this.w || h !== this.h) {
      this.w = w; this.h = h; this.mask = new Uint8Array(w * h);
      this.canvas.width = w; this.canvas.height = h;
    } else this.mask.fill(0);
  }

  segment(a, b, r, value) {
    const { w, h, mask } = this;
    const y0 = Math.max(0, Math.ceil(Math.min(a[1], b[1]) - r)), y1 = Math.min(h - 1, Math.floor(Math.max(a[1], b[1]) + r));
    for (let y = y0; y <= y1; y++) {
      const s = span(a[0], a[1], b[0], b[1], r, y);
      if (!s) continue;
      const xl = Math.max(0, Math.ceil(s[0] - EPS)), xr = Math.min(w - 1, Math.floor(s[1] + EPS));
      if (xl <= xr) mask.fill(value, y * w + xl, y * w + xr + 1);
    }
  }

  stroke(st) {
    const pts = st.points.length > 1 ? st.points : [st.points[0], st.points[0]]; // a click paints a disc
    for (let i = 1; i < pts.length; i++) this.segment(pts[i - 1], pts[i], st.radius, st.erase ? 0 : 1);
  }

  // the whole region, from its strokes (sized to the image it is shown on)
  build(region, w, h) {
    this.reset(w, h);
    for (const st of region?.strokes ?? []) this.stroke(st);
    this.render();
  }

  render(color = [46, 204, 113, 110]) {
    if (!this.w || !this.h) return;
    const g = this.canvas.getContext("2d");
    const im = g.createImageData(this.w, this.h);
    const d = im.data;
    let n = 0;
    for (let i = 0; i < this.mask.length; i++) {
      if (!this.mask[i]) continue;
      n++;
      d[4 * i] = color[0]; d[4 * i + 1] = color[1]; d[4 * i + 2] = color[2]; d[4 * i + 3] = color[3];
    }
    this.count = n;
    g.putImageData(im, 0, 0);
  }

  at(x, y) { return x >= 0 && y >= 0 && x < this.w && y < this.h ? this.mask[y * this.w + x] : 0; }
}
