"""DDIM inversion of a latent to the editing step."""
from comfy_api.latest import io

from ..dragnoise import ddim_invert, inversion_sigmas
from .bridge import (DragNoiseInputError, InversionType, ddim_sigmas, progress, range_problem, require_unet,
                     run_sampler, single_latent)


class DragNoiseInversion(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="DragNoiseInversion",
            display_name="DragNoise DDIM Inversion",
            category="DragNoise",
            description="Inverts a latent with deterministic DDIM (guidance 1) to the step where the drag is edited.",
            inputs=[
                io.Model.Input("model"),
                io.Conditioning.Input("positive", tooltip="Prompt conditioning; the official code inverts under the image's prompt."),
                io.Latent.Input("latent", tooltip="VAE Encode of the image, or a generated latent."),
                io.Int.Input("steps", default=50, min=2, max=1000, tooltip="DDIM steps of the whole schedule (paper: 50)."),
                io.Int.Input("inversion_steps", default=35, min=1, max=1000,
                             tooltip="Steps inverted = editing step t (paper and official: 35 of 50, strength 0.7)."),
            ],
            outputs=[
                io.Latent.Output("inverted_latent", display_name="inverted_latent"),
                InversionType.Output("inversion", display_name="inversion"),
                io.Int.Output("total_steps", display_name="total_steps", tooltip="Wire into KSampler (Advanced) steps."),
                io.Int.Output("start_at_step", display_name="start_at_step", tooltip="Wire into KSampler (Advanced) start_at_step."),
            ],
        )

    @staticmethod
    def check(steps, inversion_steps):
        problem = range_problem(steps=(steps, 2, 1000), inversion_steps=(inversion_steps, 1, 1000))
        if problem is None and isinstance(steps, int) and isinstance(inversion_steps, int) and inversion_steps > steps:
            problem = f"inversion_steps ({inversion_steps}) must not exceed steps ({steps})"
        return problem

    @classmethod
    def validate_inputs(cls, steps=None, inversion_steps=None):  # no **kwargs: ComfyUI would skip the rest
        return cls.check(steps, inversion_steps) or True

    @classmethod
    def execute(cls, model, positive, latent, steps, inversion_steps) -> io.NodeOutput:
        problem = cls.check(steps, inversion_steps)  # again: linked values skip validation
        if problem:
            raise DragNoiseInputError(problem)
        require_unet(model)  # before any sampling: a DiT has no bottleneck to drag
        samples = single_latent(latent, "latent", model)
        schedule = ddim_sigmas(model, steps)
        ms = model.get_model_object("model_sampling")
        path = inversion_sigmas(schedule, inversion_steps, float(ms.sigma_min))
        update = progress(inversion_steps)
        trajectory = []  # the path taken: propagation keeps the unmasked rest on it

        def sampler(model_k, x, sigmas, extra_args=None, callback=None, disable=None):
            s_in = x.new_ones([x.shape[0]])
            return ddim_invert(lambda xi, s: model_k(xi, s * s_in, **(extra_args or {})), x, sigmas.tolist(), update,
                               trajectory)

        inverted = run_sampler(model, positive, samples, path, sampler)
        start = steps - inversion_steps
        inversion = {"latent": inverted, "sigma": schedule[start], "schedule": schedule,
                     "steps": steps, "inversion_steps": inversion_steps, "trajectory": trajectory}
        return io.NodeOutput({"samples": inverted}, inversion, steps, start)
