// Where the editor's image comes from: a linked Load Image's file or a linked Toy Scene's own render
// (both live, before any Run), else the image of the node's last run (kept in its properties).
import { api } from "../../../scripts/api.js";

// "sub/name.png [input]" -> /view URL of that file
export function viewURL(value, defaultType = "input") {
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

// {filename, subfolder, type} of a saved image -> /view URL
export function fileURL(im) {
  if (!im?.filename) return null;
  const q = new URLSearchParams({ filename: im.filename, type: im.type ?? "temp", subfolder: im.subfolder ?? "" });
  return api.apiURL(`/view?${q}`);
}

// The node feeding input `name` of `node`, through reroutes.
export function inputNode(node, name) {
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
export function descends(node, from) {
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

const widget = (node, name) => node.widgets?.find((w) => w.name === name)?.value;

// The image an upstream node determines by its settings alone: a Load Image's file, or the toy
// scene, which the pack's own route renders exactly as the node does (nodes/toy.py).
export function upstreamImageURL(node) {
  const src = inputNode(node, "image");
  if (!src) return null;
  if (src.type === "DragNoiseToyScene" && src.mode === 0) {
    const scene = widget(src, "scene"), size = widget(src, "size");
    if (!Number.isInteger(scene) || !Number.isInteger(size)) return null;
    return api.apiURL(`/dragnoise/toy_scene?${new URLSearchParams({ scene, size })}`);
  }
  const file = widget(src, "image");
  return typeof file === "string" ? viewURL(file) : null;
}
