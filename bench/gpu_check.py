"""Issue 28's device proof: the drag under the ComfyUI that users run, on a GPU, in one call.

    python bench/gpu_check.py --out OUT                       # a GPU: every configuration, a table, exit 1 on a mismatch
    python bench/gpu_check.py --device cpu --layout shallow --size 128 --iterations 6 --steps 10 --out OUT   # smoke

Configurations, each in a process of its own (ComfyUI reads its options once), each started by importing
that ComfyUI's own main.py (no server): --comfy NAME=PATH[:OPTIONS], default ComfyUI 0.33 as it starts on
CUDA (DynamicVRAM on, its default), 0.33 with --disable-dynamic-vram, 0.3.75, and 0.33 with --fast
(.devhost/033, .devhost/075, else .host-0.33/ComfyUI and .host/ComfyUI). In each, with an SD1.5-layout UNet, SD VAE and CLIP-L of seeded
random weights (bench/redrag.py's), through ComfyUI's PromptExecutor:
1. node path: the drag with a painted mask (core SolidMask + MaskComposite) and two handles, one already
   within the stop distance (the stop rule's per-handle switch), eager, graph (DRAGNOISE_CUDA_GRAPHS=1),
   eager, graph: the second eager run measures the GPU's own run-to-run spread (atomics in grid_sample's
   backward), and a graph result must lie within max(2 x that spread, 2% of the bottleneck's change), with
   the same iterations, arrival and handles within a cell; the peak memory of the optimization against the
   node's count (eager and captured);
2. stop rule: the node's own record-and-optimize (bridge.record_edit_step, the model as the executor
   loaded it) with a mask and a stop distance that the eager run reaches mid-way: eager, graph, eager;
   the same iteration must stop both;
3. Cancel mid-optimization (at iteration 1, where the graph is captured, and at 10), eager and graph:
   ComfyUI reports it as an interruption, the memory held afterwards is what it was before (< 32 MiB
   more), the next drag runs; then an out-of-memory error inside the drag (oom_check): a memory error,
   memory back, the next drag runs.
Writes OUT/gpu_check.json and OUT/gpu_check.md; exits 1 on any mismatch.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "tests", ROOT / "bench"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from drag_args import drag_arguments  # noqa: E402

# imported by ComfyUI's main.py, executor and node modules but unused on this path; stubbed where absent
# (not comfy_kitchen: ComfyUI 0.33 runs without it where its import fails, not with a stand-in; sqlalchemy is
# used at start-up and travels as a wheel, as comfy-aimdo does: scripts/devhost.sh)
STUBBABLE = ("av", "aiohttp", "yarl", "kornia", "spandrel", "alembic", "simpleeval", "blake3",
             "pydantic_settings", "comfyui_frontend_package", "comfyui_workflow_templates",
             "comfyui_embedded_docs", "torchsde", "torchaudio")
MIB = 2 ** 20


def default_configs() -> list[str]:
    def first(*paths):
        return next((str(p) for p in paths if (p / "main.py").is_file()), None)
    new = first(ROOT / ".devhost" / "033", ROOT / ".host-0.33" / "ComfyUI")
    old = first(ROOT / ".devhost" / "075", ROOT / ".host" / "ComfyUI")
    out = []
    if new:
        out += [f"0.33={new}", f"0.33 no DynamicVRAM={new}:--disable-dynamic-vram"]
    if old:
        out.append(f"0.3.75={old}")
    if new:
        out.append(f"0.33 --fast={new}:--fast")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    drag_arguments(ap)
    ap.add_argument("--comfy", action="append", help="NAME=PATH[:OPTIONS] (repeatable); default: see above")
    ap.add_argument("--timeout", type=int, default=200, help="seconds per configuration at most")
    ap.add_argument("--budget", type=int, default=540, help="seconds for all configurations together")
    ap.add_argument("--out", required=True)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    out = Path(a.out)
    if a.worker:
        return worker(a, out)
    out.mkdir(parents=True, exist_ok=True)
    results, began = {}, time.perf_counter()
    specs = a.comfy or default_configs()
    for i, spec in enumerate(specs):
        # what is left, less 90 s for each configuration after this one: a slow one cannot starve them all
        limit = min(a.timeout, a.budget - (time.perf_counter() - began) - 90 * (len(specs) - i - 1))
        name, rest = spec.split("=", 1)
        path, _, options = rest.partition(":")
        part = out / f"part_{len(results)}.json"
        cmd = [sys.executable, __file__, "--worker", json.dumps({"name": name, "path": path, "options": options}),
               "--device", a.device, "--layout", a.layout, "--size", str(a.size), "--steps", str(a.steps),
               "--inversion-steps", str(a.inversion_steps), "--iterations", str(a.iterations), "--out", str(part)]
        print(f"=== {name}: {path} {options}", flush=True)
        start = time.perf_counter()
        try:
            proc = subprocess.run(cmd, timeout=max(limit, 1), env=dict(os.environ, COMFYUI_PATH=path, PYTHONUNBUFFERED="1"))
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
        r = json.loads(part.read_text()) if part.is_file() else {}
        r.update(name=name, options=options, rc=rc, seconds=round(time.perf_counter() - start, 1))
        if rc != 0:
            r.setdefault("mismatches", []).append(f"worker exit {rc}")
        results[name] = r
    table = report(results)
    print(table)
    (out / "gpu_check.md").write_text(table + "\n")
    (out / "gpu_check.json").write_text(json.dumps(results, indent=1))
    bad = {n: r["mismatches"] for n, r in results.items() if r.get("mismatches")}
    print("mismatches:", json.dumps(bad) if bad else "none")
    return 1 if bad or not results else 0


def report(results: dict) -> str:
    rows = ["| ComfyUI | weights held by | node: eager / graph iteration | graph vs eager (spread) | captured | "
            "stop rule: iterations eager / graph | Cancel (4 runs): memory after | OOM | peak / count MiB | result |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        n, s, c = r.get("node", {}), r.get("stop", {}), r.get("cancel", {})
        peak = n.get("peak_mib", {})
        rows.append(" | ".join([
            f"| {name}", r.get("patcher", "?"),
            f"{n.get('eager_ms', float('nan')):.1f} / {n.get('graph_ms', float('nan')):.1f} ms",
            f"{n.get('graph_diff', float('nan')):.4f} ({n.get('spread', float('nan')):.4f})",
            str(n.get("captured", "?")),
            f"{s.get('eager_iterations', '?')} / {s.get('graph_iterations', '?')}",
            f"+{c.get('max_growth_mib', float('nan')):.1f} MiB, interrupted {c.get('interrupted', '?')}",
            str(r.get("oom", {}).get("error", "?"))[:40],
            f"{peak.get('eager', 0):.0f}/{n.get('count_mib', {}).get('eager', 0):.0f}, "
            f"{peak.get('graph', 0):.0f}/{n.get('count_mib', {}).get('graph', 0):.0f}",
            "ok |" if not r.get("mismatches") else "**" + "; ".join(r["mismatches"])[:200] + "** |"]))
    return "\n".join(rows)


# --- one configuration, in its own process ---------------------------------------------------------------

def worker(a, out: Path) -> int:
    from dragnoise_toy import comfy_env
    spec = json.loads(a.worker)
    comfy_env.STUBBABLE = tuple(comfy_env.STUBBABLE) + STUBBABLE
    # ComfyUI's main.py first, before torch: it sets the CUDA allocator's options before torch starts
    env = comfy_env.import_comfy(a.device, stub_missing=True, extra_args=tuple(spec["options"].split()), as_main=True)
    import torch
    sys.path.insert(0, env["comfy"])
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.utils
    import execution
    import folder_paths
    import graphs
    import nodes
    import redrag
    res = {"comfyui": env["comfy"], "stubbed": env["stubbed"], "mismatches": [], "torch": torch.__version__,
           "device": torch.cuda.get_device_name() if a.device == "cuda" else "cpu"}
    core = getattr(comfy.model_patcher, "CoreModelPatcher", comfy.model_patcher.ModelPatcher)
    res["core_patcher"] = core.__name__

    def save():
        out.write_text(json.dumps(res, indent=1))
    cuda = a.device == "cuda"
    dtype = torch.float16 if cuda else torch.float32
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    work = Path(__import__("tempfile").mkdtemp(prefix="dragnoise_gpucheck_"))
    names = redrag.write_models(work / "models", a.layout, dtype)
    for kind in ("diffusion_models", "text_encoders", "vae", "vae_approx"):
        folder_paths.add_model_folder_path(kind, str(work / "models" / kind))
    folder_paths.set_input_directory(str(work / "input"))
    folder_paths.set_output_directory(str(work / "output"))
    (work / "custom_nodes").mkdir()
    os.symlink(ROOT, work / "custom_nodes" / "comfyui-dragnoise")
    import asyncio
    if not asyncio.run(nodes.load_custom_node(str(work / "custom_nodes" / "comfyui-dragnoise"))):
        raise SystemExit("the pack did not load")
    # the core mask nodes the painted region is made with (comfy_extras: not loaded without a server)
    asyncio.run(nodes.load_custom_node(str(Path(env["comfy"]) / "comfy_extras" / "nodes_mask.py"),
                                       module_parent="comfy_extras"))
    node_mod = next(m for k, m in sys.modules.items() if k.endswith(".nodes.optimize") and hasattr(m, "DragNoiseOptimize"))
    bridge = next(m for k, m in sys.modules.items() if k.endswith(".nodes.bridge") and hasattr(m, "record_edit_step"))
    executor = execution.PromptExecutor(redrag.QuietServer(), cache_type=execution.CacheType.CLASSIC,
                                        cache_args=collections.defaultdict(float))

    # what each optimization returned and the peak memory it took; the node's memory count
    seen, counts = [], []
    run_opt, count = node_mod.optimize_bottleneck, bridge.optimization_bytes

    def observed(*args, **kw):
        if cuda:
            sync()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        t = time.perf_counter()
        r = run_opt(*args, **kw)
        sync()
        seen.append({"result": r, "seconds": time.perf_counter() - t, "b0": args[1].detach().float().cpu(),
                     "peak": (torch.cuda.max_memory_allocated() - base) / MIB if cuda else 0.0})
        return r
    node_mod.optimize_bottleneck = observed
    bridge.optimization_bytes = lambda *x, **k: counts.append(count(*x, **k)) or counts[-1]

    size = a.size
    region = {"region0": {"class_type": "SolidMask", "inputs": {"value": 0.0, "width": size, "height": size}},
              "region1": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": size // 2, "height": size // 2}},
              "region": {"class_type": "MaskComposite", "inputs": {
                  "destination": ["region0", 0], "source": ["region1", 0], "x": size // 4, "y": size // 4,
                  "operation": "add"}}}
    q = size // 4
    points = [{"handle": [q + q // 2, 2 * q], "target": [3 * q, 2 * q]},  # dragged across the painted square
              {"handle": [2 * q, q + 4], "target": [2 * q + 2, q + 4]}]  # within the stop distance from the start
    sources = graphs.loaders()
    sources["unet"]["inputs"]["unet_name"] = names["unet"]
    sources["clip"]["inputs"]["clip_name"] = names["clip"]
    sources["vae"]["inputs"]["vae_name"] = names["vae"]
    salt = iter(range(1, 10 ** 6))

    # the picture from core nodes: a square on a background (0.33's Load Image decodes through PyAV, which
    # the GPU machine lacks and which is too large to carry)
    picture = {"bg": {"class_type": "EmptyImage", "inputs": {"width": size, "height": size, "batch_size": 1,
                                                             "color": 0x2a3b4c}},
               "fg": {"class_type": "EmptyImage", "inputs": {"width": size // 2, "height": size // 2, "batch_size": 1,
                                                             "color": 0xd04a20}},
               "image": {"class_type": "ImageCompositeMasked", "inputs": {
                   "destination": ["bg", 0], "source": ["fg", 0], "x": size // 4, "y": size // 4,
                   "resize_source": False}}}

    def prompt(pts=points):
        src = {**sources, **picture}
        p = graphs.drag_prompt(pts, steps=a.steps, inversion_steps=a.inversion_steps, iterations=a.iterations,
                               sources=(src, graphs.SD_REFS), mask=region)
        # a new trail_every each time: the optimization runs again (its result does not depend on it)
        p["optimize"]["inputs"]["trail_every"] = next(salt)
        p["save"] = {"class_type": "PreviewImage", "inputs": {"images": ["decode", 0]}}
        return p

    def execute(p, graph=False):
        os.environ["DRAGNOISE_CUDA_GRAPHS"] = "1" if graph else "0"
        executor.execute(p, f"check-{time.monotonic_ns()}", {}, ["save"])
        kinds = [m[0] for m in executor.status_messages]
        errors = [m[1].get("exception_message", "")[:200] for m in executor.status_messages if m[0] == "execution_error"]
        return executor.success, kinds, errors

    ok, kinds, errors = execute(prompt())  # loads the models
    if not ok:
        res["mismatches"].append(f"first drag failed: {errors}")
        save()
        return 1
    loaded = [m.model for m in mm.current_loaded_models if hasattr(m.model.model, "diffusion_model")]
    res["patcher"] = type(loaded[0]).__name__ if loaded else "?"
    res["dynamic"] = bool(loaded) and getattr(loaded[0], "is_dynamic", lambda: False)()

    # 1. node path: eager, graph, eager, graph
    runs = []
    for graph in (False, True, False, True):
        seen.clear()
        counts.clear()
        ok, kinds, errors = execute(prompt(), graph)
        if not ok or not seen:
            res["mismatches"].append(f"{'graph' if graph else 'eager'} drag failed: {errors}")
            save()
            return 1
        runs.append({"graph": graph, **seen[-1], "count": counts[-1]["total"] / MIB if counts else float("nan")})
    e1, g1, e2, g2 = runs
    ref = e1["result"]
    change = float((ref.bottleneck.float().cpu() - e1["b0"]).abs().max())
    spread = float((e2["result"].bottleneck.float() - ref.bottleneck.float()).abs().max())
    node = {"change": change, "spread": spread, "captured": [g1["result"].captured, g2["result"].captured],
            "iterations": [r["result"].iterations for r in runs], "reached": [r["result"].reached for r in runs],
            "eager_ms": 1e3 * e2["seconds"] / max(e2["result"].iterations, 1),
            "graph_ms": 1e3 * g2["seconds"] / max(g2["result"].iterations, 1),
            "peak_mib": {"eager": e2["peak"], "graph": g1["peak"]},
            "count_mib": {"eager": e2["count"], "graph": g1["count"]}}
    node["graph_diff"] = max(float((g["result"].bottleneck.float() - ref.bottleneck.float()).abs().max()) for g in (g1, g2))
    tol = max(2 * spread, 0.02 * change)
    res["node"] = node
    if cuda and not all(node["captured"]):
        res["mismatches"].append("node: the graph was not captured (fell back to eager)")
    if node["graph_diff"] > tol:
        res["mismatches"].append(f"node: graph differs by {node['graph_diff']:.4f} > {tol:.4f}")
    for g in (g1, g2):
        if (g["result"].iterations, g["result"].reached) != (ref.iterations, ref.reached) or \
                max(abs(x - y) for h, k in zip(g["result"].handles, ref.handles) for x, y in zip(h, k)) > 1:
            res["mismatches"].append(f"node: graph stopped/tracked differently: {g['result'].iterations} "
                                     f"{g['result'].handles} vs {ref.iterations} {ref.handles}")
    if cuda and change <= 0:
        res["mismatches"].append("node: the bottleneck did not change")
    for mode in ("eager", "graph"):  # the count must cover what the optimization took
        if cuda and node["peak_mib"][mode] > node["count_mib"][mode]:
            res["mismatches"].append(f"memory: {mode} peak {node['peak_mib'][mode]:.0f} MiB > count "
                                     f"{node['count_mib'][mode]:.0f} MiB")
    save()

    # 2. the stop rule, through the node's own record-and-optimize, on the UNet as ComfyUI's loader makes it
    # (the loaded one above is the propagation patch's clone); under inference mode, as the executor runs nodes
    with torch.inference_mode():
        unet = nodes.UNETLoader().load_unet(names["unet"], "default")[0]
        res["stop"] = stop_check(a, bridge, node_mod, run_opt, unet, cuda, sync, res)
    save()

    # 3. Cancel mid-optimization, eager and graph, then out of memory
    res["cancel"] = cancel_check(a, mm, comfy.utils, execute, prompt, cuda, res)
    save()
    if cuda:
        res["oom"] = oom_check(mm, bridge, execute, prompt, res)
    save()
    return 1 if res["mismatches"] else 0


def stop_check(a, bridge, node_mod, run_opt, model, cuda, sync, res) -> dict:
    import torch
    from dragnoise import DragConfig
    dev = model.load_device
    lat = a.size // 8
    g = torch.Generator().manual_seed(3)
    latent = torch.randn(1, 4, lat, lat, generator=g)
    positive = [[torch.randn(1, 77, 768, generator=g), {}]]
    sigma = bridge.ddim_sigmas(model, a.steps)[a.steps - a.inversion_steps]
    grid = (a.size // 2, a.size // 2)
    q = grid[0] // 4
    handles, targets = [(q + q // 2, 2 * q)], [(3 * q, 2 * q)]
    painted = torch.zeros(1, a.size, a.size)
    painted[:, a.size // 4: 3 * a.size // 4, a.size // 4: 3 * a.size // 4] = 1  # the square that may change

    def optimize(stop, capture, trail=None):
        def work(replay, x0):
            b = replay.bottleneck
            cfg = DragConfig(iterations=a.iterations, stop_distance=stop)
            cb = None if trail is None else (lambda k, n, info: trail.append(
                float((torch.tensor(targets, device=info["handles"].device) - info["handles"]).norm(dim=1).max())))
            t = time.perf_counter()
            # on the bottleneck grid, made here (outside inference mode), as the node makes it
            region = bridge.kept_region(painted.clone(), (a.size, a.size), tuple(b.shape[-2:])).to(b.device)
            r = run_opt(replay.decode, b, handles, targets, cfg, region, cb, grid=grid,
                        capture=capture, fatal=bridge.FATAL)
            sync()
            return r, (time.perf_counter() - t) / max(r.iterations, 1)
        return bridge.record_edit_step(model, positive, latent.to(dev, model.model.get_dtype()), sigma, work)
    trail = []
    optimize(-1.0, None, trail)
    # a stop distance the eager run reaches after a few iterations: the closest it gets after the 4th,
    # if that is closer than where it started (else the handles never moved and the rule cannot be tried)
    later = [i for i in range(4, len(trail)) if trail[i] < trail[0] - 0.5]
    if not later:
        (res["mismatches"] if cuda else res.setdefault("notes", [])).append(
            f"stop: the handles never got closer ({trail[:1]} -> {min(trail) if trail else None}): rule not tried")
        return {"trail": trail}
    k = min(later, key=lambda i: trail[i])
    stop = trail[k] + 1e-3
    graph = "graph" if cuda else None
    (e, te), (gr, tg), (e2, _) = optimize(stop, None), optimize(stop, graph), optimize(stop, None)
    out = {"stop_distance": stop, "expected_stop": k, "eager_iterations": e.iterations, "graph_iterations": gr.iterations,
           "eager_reached": e.reached, "graph_reached": gr.reached, "captured": gr.captured,
           "repeat_iterations": e2.iterations, "eager_ms": 1e3 * te, "graph_ms": 1e3 * tg,
           "graph_diff": float((gr.bottleneck.float() - e.bottleneck.float()).abs().max()),
           "spread": float((e2.bottleneck.float() - e.bottleneck.float()).abs().max())}
    if not e.reached or e.iterations >= a.iterations:
        res["mismatches"].append(f"stop: the eager run did not stop early (handles never got closer): {out}")
    elif (gr.iterations, gr.reached) != (e.iterations, e.reached) and e2.iterations == e.iterations:
        res["mismatches"].append(f"stop: graph stopped at {gr.iterations}, eager at {e.iterations}")
    if cuda and not gr.captured and gr.iterations > 1:
        res["mismatches"].append("stop: the graph was not captured")
    return out


def cancel_check(a, mm, utils, execute, prompt, cuda, res) -> dict:
    import torch
    out = {"runs": [], "interrupted": 0, "max_growth_mib": 0.0}

    def held():
        if not cuda:
            return 0
        torch.cuda.synchronize()
        return torch.cuda.memory_allocated()
    for graph in (False, True):
        for at in (1, 10):
            at = min(at, a.iterations - 1)
            fired = threading.Event()

            def hook(value, total, *_, **__):
                if total == a.iterations and value >= at and not fired.is_set():
                    fired.set()
                    mm.interrupt_current_processing(True)
            before = held()
            utils.set_progress_bar_global_hook(hook)
            ok, kinds, errors = execute(prompt(), graph)
            utils.set_progress_bar_global_hook(None)
            mm.interrupt_current_processing(False)
            growth = (held() - before) / MIB
            interrupted = "execution_interrupted" in kinds
            out["runs"].append({"graph": graph, "at": at, "interrupted": interrupted, "growth_mib": growth,
                                "errors": errors})
            out["interrupted"] += interrupted
            out["max_growth_mib"] = max(out["max_growth_mib"], growth)
            if not interrupted:
                res["mismatches"].append(f"cancel at {at} ({'graph' if graph else 'eager'}): not reported as an "
                                         f"interruption ({kinds[-1:]}, {errors})")
            if growth > 32:
                res["mismatches"].append(f"cancel at {at}: {growth:.0f} MiB still held")
    ok, kinds, errors = execute(prompt(), True)
    out["next_drag_ok"] = ok
    if not ok:
        res["mismatches"].append(f"the drag after Cancel failed: {errors}")
    return out


def oom_check(mm, bridge, execute, prompt, res) -> dict:
    """An out-of-memory error inside the drag. ComfyUI's refusal (bridge.check_fits) is switched off for this
    run so that the allocation itself fails; the memory is taken by a per-process cap with PyTorch's own
    allocator, or by a tensor that fills the free memory with cudaMallocAsync (ComfyUI's default backend,
    where the cap only sets a release threshold)."""
    import torch
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    before = torch.cuda.memory_allocated()
    backend = torch.cuda.memory.get_allocator_backend()
    out = {"allocator": backend}
    refusal, blocker = bridge.check_fits, None
    bridge.check_fits = lambda *_: None
    try:
        if backend == "native":
            total = torch.cuda.get_device_properties(0).total_memory
            torch.cuda.set_per_process_memory_fraction(min(1.0, (before + 64 * MIB) / total))
        else:
            free = torch.cuda.mem_get_info()[0]
            blocker = torch.empty(max(free - 64 * MIB, 0), dtype=torch.uint8, device="cuda")
        ok, kinds, errors = execute(prompt(), True)
    finally:
        bridge.check_fits = refusal
        torch.cuda.set_per_process_memory_fraction(1.0)
        del blocker
    out["error"] = errors[0] if errors else ("none" if ok else str(kinds[-1:]))
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    out["growth_mib"] = (torch.cuda.memory_allocated() - before) / MIB
    ok2, _, errors2 = execute(prompt(), True)
    out["next_drag_ok"] = ok2
    if ok:
        res["mismatches"].append("oom: the drag with no memory left did not fail")
    elif "out of memory" not in out["error"].lower() and "memory" not in out["error"].lower():
        res["mismatches"].append(f"oom: failed, but not with a memory error: {out['error'][:120]}")
    if out["growth_mib"] > 32:
        res["mismatches"].append(f"oom: {out['growth_mib']:.0f} MiB still held")
    if not ok2:
        res["mismatches"].append(f"oom: the next drag failed: {errors2}")
    return out


if __name__ == "__main__":
    sys.exit(main())
