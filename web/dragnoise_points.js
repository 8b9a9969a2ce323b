// DragNoise point editor: the ComfyUI side. Puts the editor (dragnoise/editor.js) on every Points
// node, feeds it its image and the optimizer's live progress, and keeps it across runs, reloads and
// workflow tabs. The node's `points` string widget stays the single source of truth (dragnoise/value.js).
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { PointEditor } from "./dragnoise/editor.js";
import { descends, fileURL, inputNode, upstreamImageURL } from "./dragnoise/sources.js";

const NODE = "DragNoisePoints";
const IMAGE_PROP = "dragnoise_last_image"; // the node's own image, saved with the workflow (cached runs, reloads)
const AFTER_PROP = "dragnoise_after_image"; // the drag's output image, for the before/after view
const UI_KEY = "dragnoise_image"; // nodes/points.py
const PROGRESS_EVENT = "dragnoise.progress"; // nodes/bridge.py

// Let the frontend see a property change now: it stores the open workflow (restored on reload)
// when its change tracker notices one, which otherwise waits for the next mouse or key event.
function markChanged() {
  try { app.extensionManager?.workflow?.activeWorkflow?.changeTracker?.checkState?.(); } catch {}
}

const workflowKey = () => {
  const wf = app.extensionManager?.workflow?.activeWorkflow;
  return wf?.key ?? wf?.path ?? null;
};

const saved = (im) => ({ filename: im.filename, subfolder: im.subfolder ?? "", type: im.type ?? "temp" });

// Every point editor whose node feeds (through its points input) the node that sent `id`.
function editorsOf(id) {
  const node = app.graph?.getNodeById?.(Number(id)) ?? app.graph?.getNodeById?.(id);
  const src = node && inputNode(node, "points");
  return src?.dragnoiseEditor ? [src.dragnoiseEditor] : [];
}

function pointEditors() {
  return (app.graph?._nodes ?? app.graph?.nodes ?? []).filter((n) => n.dragnoiseEditor).map((n) => n.dragnoiseEditor);
}

function attach(node, pw) {
  node.properties ??= {};
  let executedURL = null; // what its last run showed (properties[IMAGE_PROP] after a reload)
  const editor = (node.dragnoiseEditor = new PointEditor(node, pw, {
    // an upstream image known from its settings wins (it is live); else what the node last ran on,
    // kept in its properties (set by configure after creation, so read here) for cached runs and reloads
    imageURL: () => upstreamImageURL(node) ?? executedURL ?? fileURL(node.properties?.[IMAGE_PROP]),
    workflowKey,
    changed: markChanged,
  }));
  editor.setExecuted = (images) => {
    const im = images?.[0];
    if (!im?.filename) return;
    node.properties[IMAGE_PROP] = saved(im);
    executedURL = fileURL(im);
    markChanged();
    editor.sync();
  };
  editor.setAfterImage = (im) => {
    node.properties[AFTER_PROP] = saved(im);
    markChanged();
    editor.setAfter(fileURL(im));
  };
  const widget = node.addDOMWidget("points_editor", "dragnoise_points", editor.root, {
    serialize: false,
    hideOnZoom: false,
    getValue: () => undefined,
    setValue: () => {},
    getMinHeight: () => 330,
  });
  widget.serialize = false; // not a node input: stays out of widgets_values and the API prompt
  widget.computeLayoutSize = () => ({ minHeight: 330, minWidth: 300 });
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
    if (editor.text !== editor.lastText || editor.source.imageURL() !== editor.imgURL) editor.sync();
    editor.setAfter(fileURL(node.properties?.[AFTER_PROP]));
  }, 300);
  const size = node.computeSize?.() ?? node.size;
  node.setSize?.([Math.max(size[0], 320), Math.max(size[1], 390)]);
}

app.registerExtension({
  name: "DragNoise.PointEditor",
  setup() {
    api.addEventListener(PROGRESS_EVENT, (e) => editorsOf(e.detail?.node).forEach((ed) => ed.onProgress(e.detail)));
    // Cancel or an error ends the prompt without the optimizer's last ("done") message
    for (const type of ["execution_interrupted", "execution_error"]) {
      api.addEventListener(type, (e) => pointEditors().forEach((ed) => ed.onStopped(e.detail?.prompt_id)));
    }
    // the drag's result: the first image an executed node downstream of a points node shows
    api.addEventListener("executed", (e) => {
      const d = e.detail, im = d?.output?.images?.[0];
      const node = im && app.graph?.getNodeById?.(Number(d.display_node ?? d.node));
      if (!node) return;
      for (const ed of pointEditors()) if (descends(node, ed.node)) ed.setAfterImage(im);
    });
  },
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData?.name !== NODE) return;

    const onNodeCreated = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const r = onNodeCreated?.apply(this, arguments);
      const pw = this.widgets?.find((w) => w.name === "points");
      if (pw) attach(this, pw);
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
