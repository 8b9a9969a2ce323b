// This pack's workflows open at the view they store (extra.ds: a zoom where titles and widgets show, on the
// drag's main path; scripts/make_workflows.py). Frontends 1.49+ ignore the stored view when a workflow is
// opened from the Templates browser and fit the whole graph to the window instead: for these graphs that is
// 33-52% zoom, below the canvas's low-quality threshold, so every node is a grey box with no title or widget.
// When that fit has made one of our workflows unreadable, its stored view is put back.
import { app } from "../../scripts/app.js";

// the canvas hides titles and widgets below MinFontSizeForLOD / (NODE_TEXT_SIZE * sqrt(devicePixelRatio))
// (LGraphCanvas.updateLowQualityThreshold; the setting's default is 8 px)
const MIN_FONT_PX = 8;

function readable(scale) {
  const text = window.LiteGraph?.NODE_TEXT_SIZE ?? 14;
  return scale >= MIN_FONT_PX / (text * Math.sqrt(window.devicePixelRatio || 1));
}

app.registerExtension({
  name: "DragNoise.ReadableView",
  async afterConfigureGraph() {
    const graph = app.graph, note = graph?.extra?.dragnoise_note, ds = graph?.extra?.ds;
    if (!note || !ds || !readable(ds.scale)) return;
    const stored = { scale: ds.scale, offset: [...ds.offset] };
    // the frontend fits the view during the load (1.49) or on a frame after it (1.58): watch for a moment
    const until = performance.now() + 2000;
    const check = () => {
      const canvas = app.canvas;
      if (app.graph !== graph || graph.extra?.dragnoise_note !== note || !canvas) return; // another load
      if (!readable(canvas.ds.scale)) {
        canvas.ds.scale = stored.scale;
        canvas.ds.offset[0] = stored.offset[0];
        canvas.ds.offset[1] = stored.offset[1];
        canvas.setDirty(true, true);
      }
      if (performance.now() < until) requestAnimationFrame(check);
    };
    requestAnimationFrame(check);
  },
});
