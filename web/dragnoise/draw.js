// Drawing the pairs, the pending handle and the live tracking trails on the editor canvas (CSS pixels).
import { toCSS } from "./geometry.js";

export const HANDLE = "#e0262b"; // red, as in the paper's figures
export const TARGET = "#1f5fe0"; // blue
const TRAIL = "#ffd400";

export function drawDot(g, [x, y], color, ring, label) {
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

export function drawPair(g, L, p, n, selected) {
  const [hx, hy] = toCSS(p.handle, L), [tx, ty] = toCSS(p.target, L);
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
  drawDot(g, [hx, hy], HANDLE, selected, n);
  drawDot(g, [tx, ty], TARGET, selected);
}

// each handle's path so far (tracked positions, image pixels) and where it is now
export function drawTrails(g, L, live, showTargets) {
  if (!live) return;
  live.trails.forEach((trail, i) => {
    const pts = trail.map((p) => toCSS(p, L));
    g.lineWidth = 2;
    g.strokeStyle = TRAIL;
    g.setLineDash([4, 3]);
    g.beginPath();
    pts.forEach(([x, y], k) => (k ? g.lineTo(x, y) : g.moveTo(x, y)));
    g.stroke();
    g.setLineDash([]);
    if (showTargets) drawDot(g, toCSS(live.targets[i], L), TARGET, false);
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

// the brush outline under the pointer (CSS pixels)
export function drawBrush(g, [x, y], radius, erase) {
  g.beginPath();
  g.arc(x, y, Math.max(1, radius), 0, Math.PI * 2);
  g.lineWidth = 2.5;
  g.strokeStyle = "#000";
  g.stroke();
  g.lineWidth = 1.2;
  g.strokeStyle = erase ? "#ff8a80" : "#b9f6ca";
  g.setLineDash(erase ? [3, 3] : []);
  g.stroke();
  g.setLineDash([]);
}
