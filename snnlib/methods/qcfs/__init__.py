"""QCFS (Bu et al., ICLR 2022; docs/methods/qcfs.md): an ANN trained with the quantization-clip-floor-shift
activation, converted to IF neurons with threshold theta = lambda and initial potential theta / 2, read out after
every T. Registers the "qcfs" training recipe and two methods: "qcfs" and its ablation "qcfs_v0zero" (v0 = 0)."""
from __future__ import annotations

from ..base import Method, Recipe, Variant, VariantRun, metering, register, register_recipe
from .activation import QCFS, qcfs_layers, set_activation_mode
from .conversion import convert
from .guard import LambdaGuard


def guard_of(exp: dict) -> LambdaGuard:
    """The experiment's lambda guard (activation.lambda_guard, lambda_lr_scale, lambda_weight_decay)."""
    act = exp["activation"]
    return LambdaGuard(mode=act["lambda_guard"]["mode"], min=act["lambda_guard"]["min"],
                       lr_scale=act["lambda_lr_scale"], weight_decay=act["lambda_weight_decay"])


class QCFSRecipe(Recipe):
    name = "qcfs"
    levels_key = ("activation", "L")

    def build(self, exp):
        from ...data import get_info
        from ...models import create_model
        info, act = get_info(exp["dataset"]), exp["activation"]
        # a percentile init is set from data once the network exists (train); 1.0 is a placeholder until then
        lam0 = act["lambda_init"] if isinstance(act["lambda_init"], (int, float)) else 1.0
        return create_model(exp["model"], num_classes=info.num_classes, in_channels=info.in_channels,
                            image_size=info.image_size, act=lambda: QCFS(act["L"], lam0))

    def train(self, ctx):
        import torch
        from ...training import TrainSettings, calibrate_lambda, train
        exp, t = ctx.exp, ctx.exp["train"]
        lam = exp["activation"]["lambda_init"]
        calibrated = None
        if isinstance(lam, dict):
            # `samples` training images without augmentation (ImageNet: resized and centre-cropped), decoded once
            pick = torch.randperm(len(ctx.data), generator=torch.Generator().manual_seed(ctx.seed))[:lam["samples"]]
            calib = ctx.data.without_augmentation().images(pick)
            calibrated = calibrate_lambda(ctx.model, ctx.to_input(calib), lam["percentile"])
            del calib
            ctx.log(f"lambda initialised at the {lam['percentile']}th percentile of each layer's input: {calibrated}")
        settings = TrainSettings(epochs=t["epochs"], batch_size=t["batch_size"], lr=t["lr"], momentum=t["momentum"],
                                 weight_decay=t["weight_decay"], schedule=t["schedule"],
                                 checkpoint_every_s=t.get("checkpoint_every_s"), lambda_guard=guard_of(exp))
        hist = train(ctx.model, ctx.data.to(ctx.device), None, ctx.to_input, settings, ctx.seed,
                     ctx.ckpt_dir / "train_state.pt", ctx.augment, ctx.log, fingerprint=ctx.fingerprint)
        return {"history": hist["history"], "lambda_calibrated": calibrated,
                "lambdas": [m.lam.item() for m in qcfs_layers(ctx.model)]}

    def views(self):
        return {"ann_quantized": lambda m: set_activation_mode(m, "qcfs"),
                "ann_clip": lambda m: set_activation_mode(m, "clip")}

    def final_view(self, model):
        return set_activation_mode(model, "qcfs")


class QCFSMethod(Method):
    """Plain conversion: every read-out step counts, no pre-run."""
    name = conversion = "qcfs"
    recipe = "qcfs"
    doc = "docs/methods/qcfs.md"
    summary = "SNN, QCFS"
    v0_fraction = 0.5

    def variants(self, exp, settings):
        return [Variant("", self.summary)]

    def convert(self, ann, exp, settings, calibration=None):
        return convert(ann, v0_fraction=self.v0_fraction)

    def convert_report(self, snn):
        from ...neurons import if_neurons
        neurons = if_neurons(snn)
        return {"spiking_layers": len(neurons), "thresholds": [float(n.theta) for n in neurons],
                "v0_fraction": self.v0_fraction}

    def run(self, snn, x, T_max, exp, settings, meter):
        from ...engine import simulate
        with metering(meter):
            sim = simulate(snn, x, T_max, chunk=exp["eval"]["chunk"])
        return {"": VariantRun(sim[""], sim.steps[""] if meter is not None else None)}


class QCFSv0Zero(QCFSMethod):
    """The ablation of QCFS's half-threshold initial potential: the same ANN, IF neurons start at v0 = 0."""
    name = conversion = "qcfs_v0zero"
    summary = "SNN, QCFS with v0 = 0 (ablation)"
    v0_fraction = 0.0


register_recipe(QCFSRecipe())
register(QCFSMethod())
register(QCFSv0Zero())
