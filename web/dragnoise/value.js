// The Points node's `points` string: the single source of truth, what the workflow saves and what an
// API user sends. Either the plain list of pairs (no region), or, once a region is painted,
//   {"pairs": [{"handle":[x,y],"target":[x,y]}, ...],
//    "region": {"size": [W, H], "strokes": [{"erase": false, "radius": 24, "points": [[x,y], ...]}, ...]}}
// in image pixels (dragnoise/points.py parses, checks and rasterizes it).

const pair = (p) => ({ handle: [Number(p.handle[0]), Number(p.handle[1])], target: [Number(p.target[0]), Number(p.target[1])] });

// text -> {pairs, region} (region null when none), or null when the text is not one of the two forms
export function parseValue(text) {
  let v;
  try { v = JSON.parse(text || "[]"); } catch { return null; }
  let region = null;
  if (v && !Array.isArray(v) && typeof v === "object" && Array.isArray(v.pairs)) {
    const r = v.region;
    if (r && Array.isArray(r.size) && Array.isArray(r.strokes)) {
      region = {
        size: [Number(r.size[0]), Number(r.size[1])],
        strokes: r.strokes.filter((s) => s && Array.isArray(s.points) && s.points.length)
          .map((s) => ({ erase: !!s.erase, radius: Number(s.radius), points: s.points.map((p) => [Number(p[0]), Number(p[1])]) })),
      };
    }
    v = v.pairs;
  }
  if (!Array.isArray(v)) return null;
  const pairs = v.filter((p) => p && Array.isArray(p.handle) && Array.isArray(p.target)).map(pair);
  return { pairs, region };
}

// {pairs, region} -> text; no region (or one with no strokes) writes the plain list
export function dumpValue({ pairs, region }) {
  const list = pairs.map((p) => ({ handle: [...p.handle], target: [...p.target] }));
  if (!region?.strokes?.length) return JSON.stringify(list);
  return JSON.stringify({
    pairs: list,
    region: { size: [...region.size], strokes: region.strokes.map((s) => ({ erase: s.erase, radius: s.radius, points: s.points })) },
  });
}

export const copyPairs = (pairs) => pairs.map((p) => ({ handle: [...p.handle], target: [...p.target] }));
