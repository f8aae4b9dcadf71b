"""Where a tfmm training step spends its time: a TensorFlow profiler trace, summed by kind.

Traces a few steps of the `Trainer`'s compiled step with XLA's per-instruction trace events on
(`XLA_FLAGS=--xla_cpu_enable_xprof_traceme=true`, host tracer level 3) and sums the self time of
every traced instruction over all threads, by kind: the XLA instruction's name without its
numbering (`convolution`, `dot`, `ynn_fusion` = matrix products and convolutions run by YNNPACK,
`..._fusion` = fused elementwise / reduction kernels, `reduce-window` / `select-and-scatter` =
pooling and its gradient, ...), and TensorFlow ops outside the XLA cluster (the optimizer update
runs there). Shares are of the busy time (the sum of those self times).

    python bench/profile_step.py --model text --length 32
    python bench/profile_step.py --model text --length 128
    python bench/profile_step.py --model image        # ResNet50 32x32, batch 64
    python bench/profile_step.py --model audio
"""

import collections
import glob
import os
import re
import tempfile
import time

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_cpu_enable_xprof_traceme=true").strip()

import benchlib  # noqa: E402

import numpy as np  # noqa: E402

# Events that wrap or wait for the work (runtime, executors, thread pools): their own time is
# not counted; what runs inside them is.
WAITING = re.compile(r"^(end: |SlinkyThreadPool|BlockUntilReady|TFE_|Eager|KernelAndDeviceFunc|"
                     r"CpuExecutable|ThunkExecutor|ExecutorState|FunctionRun|ThreadpoolListener|"
                     r"ValidateInputTypeAndPlacement|train_step|__inference|Iterator|"
                     r"[A-Za-z]*PartitionedCall|XlaLaunch|_XlaRun)")


def kind_of(name):
    """An XLA instruction's kind ("convolution", "ynn_fusion", "bitcast_concatenate_fusion",
    ...): its name without the "wrapped_" prefix and the numbering; "TF op: Type" outside XLA."""
    if ":" in name:  # TensorFlow's own op events read "name:OpType"
        return "TF op outside XLA: " + name.rsplit(":", 1)[1]
    return re.sub(r"(\.\d+)+$", "", re.sub(r"^wrapped_", "", name))


def self_times(plane):
    """{event name: self time in seconds}, summed over every thread of a trace plane."""
    names = plane.event_metadata
    totals = collections.Counter()
    for line in plane.lines:
        events = sorted(((event.offset_ps, event.offset_ps + event.duration_ps,
                          names[event.metadata_id].name) for event in line.events),
                        key=lambda item: (item[0], -item[1]))
        stack = []  # [start, end, name, time of children]
        for start, end, name in events:
            while stack and stack[-1][1] <= start:
                done = stack.pop()
                totals[done[2]] += (done[1] - done[0] - done[3]) / 1e12
            if stack:
                stack[-1][3] += end - start
            stack.append([start, end, name, 0])
        while stack:
            done = stack.pop()
            totals[done[2]] += (done[1] - done[0] - done[3]) / 1e12
    return totals


def main():
    parser = benchlib.parser(__doc__)
    parser.add_argument("--model", choices=("text", "image", "audio"), default="text")
    parser.add_argument("--length", type=int, default=32, help="text length (text model)")
    parser.add_argument("--batch-size", type=int, default=0, help="0: 32 text, 64 image/audio")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--top", type=int, default=8)
    args = parser.parse_args()
    import keras
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    from tfmm.config import Config, load_stages
    from tfmm.models.multimodal_model import build_multimodal_model
    from tfmm.training.strategy import set_mixed_precision
    from tfmm.training.trainer import Trainer

    print(benchlib.machine_line())
    set_mixed_precision("bfloat16" if args.dtype == "bfloat16" else "none")
    keras.utils.set_random_seed(0)
    random = np.random.default_rng(0)
    if args.model == "text":
        batch = args.batch_size or 32
        config = Config()
        config.data.modalities = ("text",)
        config.data.text_sequence_length = args.length
        config.model.freeze_text_encoder = False
        config.model.fusion = "concat"
        config.model.head_hidden_dim = 0
        features = {"token_ids": tf.constant(random.integers(1000, 20000, (batch, args.length)),
                                             tf.int32),
                    "segment_ids": tf.zeros((batch, args.length), tf.int32),
                    "padding_mask": tf.ones((batch, args.length), tf.int32)}
        what = f"MiniLM text step, {batch} x {args.length} tokens"
    else:
        config = dict(load_stages(benchlib.repo_path("configs/av_digits.py")))[
            f"{args.model}_encoder"]
        batch = args.batch_size or 64
        data = config.data
        if args.model == "image":
            features = {"image": tf.constant(random.uniform(
                0, 255, (batch, data.image_size, data.image_size, 3)), tf.float32)}
            what = f"ResNet50 step, {batch} x {data.image_size}x{data.image_size}"
        else:
            features = {"audio": tf.constant(random.uniform(-0.5, 0.5, (batch, data.audio_length)),
                                             tf.float32)}
            what = f"audio encoder step, {batch} x {data.audio_length} samples"
    features[f"{args.model}_mask"] = tf.ones((batch,), tf.float32)
    targets = tf.constant(random.integers(0, 10, batch), tf.int32)
    config.training.run_dir = tempfile.mkdtemp(prefix="tfmm-bench-profile-")
    config.training.jit_compile = "true"
    config.training.checkpoint_every_steps = 0
    config.training.mixed_precision = "bfloat16" if args.dtype == "bfloat16" else "none"
    model = build_multimodal_model(config, 10)
    trainer = Trainer.from_config(model, config, tf.distribute.get_strategy(), 100, config.training.run_dir,
                      log=lambda line: None)
    for _ in range(2):
        float(trainer.train_step((features, targets))[0])  # compile, warm up
    logdir = tempfile.mkdtemp(prefix="tfmm-bench-trace-")
    tf.profiler.experimental.start(logdir, options=tf.profiler.experimental.ProfilerOptions(
        host_tracer_level=3))
    begin = time.perf_counter()
    for _ in range(args.steps):
        float(trainer.train_step((features, targets))[0])
    wall = time.perf_counter() - begin
    tf.profiler.experimental.stop()

    space = xplane_pb2.XSpace()
    with open(sorted(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True))[-1],
              "rb") as handle:
        space.ParseFromString(handle.read())
    plane = next(plane for plane in space.planes if plane.name == "/host:CPU")
    totals = self_times(plane)
    kinds = collections.Counter()
    for name, seconds in totals.items():
        if not WAITING.match(name):
            kinds[kind_of(name)] += seconds
    work = sum(kinds.values())
    print(f"{what}, {args.dtype}, XLA on; {args.steps} traced steps, {wall / args.steps:.2f} s "
          f"per step; busy time in the traced work = {work / wall:.2f} x the wall time "
          f"({os.cpu_count()} cores, shared). Share of the busy time by kind:")
    for kind, seconds in kinds.most_common(args.top):
        print(f"  {seconds / work:6.1%}  {kind}")
    print(f"  {sum(seconds for kind, seconds in kinds.items() if kind.startswith('TF op')) / work:6.1%}"
          "  all TF ops outside XLA (the optimizer update, input handling)")


if __name__ == "__main__":
    main()
