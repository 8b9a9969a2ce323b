// Image pixels <-> the editor canvas's CSS pixels (zoom-independent: the graph's zoom scales the
// element, so clicks go through its bounding rect).

// the image drawn "contain"-fit in the canvas
export function layout(canvas, img) {
  const cw = canvas.clientWidth, ch = canvas.clientHeight;
  if (!img) return { cw, ch, s: 1, ox: 0, oy: 0 };
  const iw = img.naturalWidth, ih = img.naturalHeight;
  const s = Math.min(cw / iw, ch / ih);
  return { cw, ch, s, ox: (cw - iw * s) / 2, oy: (ch - ih * s) / 2 };
}

// event -> integer image pixel (the pixel under the pointer), clamped into the image
export function toImage(canvas, img, e) {
  const r = canvas.getBoundingClientRect();
  const L = layout(canvas, img);
  const x = ((e.clientX - r.left) * L.cw) / r.width, y = ((e.clientY - r.top) * L.ch) / r.height;
  const iw = img.naturalWidth, ih = img.naturalHeight;
  const px = Math.floor((x - L.ox) / L.s), py = Math.floor((y - L.oy) / L.s);
  return { px: Math.min(iw - 1, Math.max(0, px)), py: Math.min(ih - 1, Math.max(0, py)),
           inside: px >= 0 && py >= 0 && px < iw && py < ih, x, y };
}

// image pixel -> the CSS point at its centre
export function toCSS([px, py], L) {
  return [L.ox + (px + 0.5) * L.s, L.oy + (py + 0.5) * L.s];
}

// screen pixels per CSS pixel of the canvas (the graph zoom)
export function zoomOf(canvas) {
  const w = canvas.clientWidth;
  return w ? canvas.getBoundingClientRect().width / w : 1;
}
