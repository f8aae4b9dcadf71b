"""Decoding of one video (an animated GIF, or a list of encoded frame images) into a fixed number
of frames with a frame mask, in pure TF ops (tf.data, the serving signature; no py_function).

A video arrives as either
    - a scalar tf.string: the bytes of an animated GIF (tf.io.decode_gif reads every frame), or
    - a tf.string vector [F]: encoded frame images (PNG/JPEG/...), one per frame in order, with ""
      entries at the end as padding. A vector whose only non-empty entry is a GIF is that GIF.
Either way the same sampler picks the frame indices and the same resize makes them S x S, so a
GIF and a frame folder holding the same frames give identical tensors.
"""

import tensorflow as tf

GIF_SIGNATURE = b"GIF8"


def sample_frame_indices(num_available: tf.Tensor, num_frames: int, sampling: str):
    """The frame indices a clip of `num_available` frames contributes, and which are real.

    "uniform": with more than `num_frames` frames, `num_frames` indices spread evenly from the
    first frame to the last (index i is round(i * (N - 1) / (T - 1)); T = 1 takes the middle
    frame); otherwise every frame. "first": the first `num_frames` frames. Slots past the clip's
    end are padding: index 0 and mask 0 (never a repeated frame).

    Args:
        num_available: int32 scalar N, frames in the clip.
        num_frames: T, frames wanted.
        sampling: "uniform" | "first".

    Returns:
        (indices int32 [T], frame_mask float32 [T]).
    """
    if sampling not in ("uniform", "first"):
        raise ValueError(f"sampling must be 'uniform' or 'first'. Received: {sampling!r}")
    count = tf.cast(num_available, tf.int32)
    slots = tf.range(num_frames, dtype=tf.int32)
    if sampling == "uniform" and num_frames > 1:
        # Integer round-half-up of i * (N - 1) / (T - 1): exact, no float ties.
        spread = (2 * slots * (count - 1) + (num_frames - 1)) // (2 * (num_frames - 1))
    elif sampling == "uniform":
        spread = tf.fill([1], (count - 1) // 2)
    else:
        spread = slots
    indices = tf.where(count > num_frames, spread, slots)
    real = slots < count
    indices = tf.where(real, indices, tf.zeros_like(indices))
    return indices, tf.cast(real, tf.float32)


def resize_frames(frames: tf.Tensor, size: int) -> tf.Tensor:
    """[K, H, W, 3] frames (any dtype) -> float32 [K, size, size, 3] in [0, 255].

    Bilinear, antialiased when shrinking, as `decoding.decode_image` resizes still images.
    """
    frames = tf.image.resize(tf.cast(frames, tf.float32), (size, size), method="bilinear",
                             antialias=True)
    return tf.clip_by_value(frames, 0.0, 255.0)


def decode_video_frames(encoded: tf.Tensor, num_frames: int, size: int,
                        sampling: str = "uniform"):
    """Decodes one video into `num_frames` RGB frames of size x size and their mask.

    Grayscale frames are expanded to three channels. A clip with fewer frames than `num_frames`
    is zero-padded at the end with mask 0. An undecodable GIF or frame raises the decoder's
    InvalidArgumentError (the manifest check and the serving input checks catch bad files first
    with a message that names them).

    Args:
        encoded: tf.string scalar (GIF bytes) or [F] (frame images, "" padding at the end).
        num_frames: T.
        size: S.
        sampling: "uniform" | "first" (see `sample_frame_indices`).

    Returns:
        (frames float32 [T, S, S, 3] in [0, 255], frame_mask float32 [T]).
    """
    encoded = tf.convert_to_tensor(encoded, tf.string)
    if encoded.shape.rank == 0:
        encoded = encoded[tf.newaxis]
    present = tf.strings.length(encoded) > 0
    count = tf.reduce_sum(tf.cast(present, tf.int32))
    one_gif = tf.logical_and(tf.equal(count, 1), tf.equal(
        tf.strings.substr(encoded[0], 0, len(GIF_SIGNATURE)), GIF_SIGNATURE))

    def from_gif():
        clip = tf.io.decode_gif(encoded[0])  # uint8 [N, H, W, 3]
        indices, mask = sample_frame_indices(tf.shape(clip)[0], num_frames, sampling)
        return resize_frames(tf.gather(clip, indices), size), mask

    def from_frame_list():
        indices, mask = sample_frame_indices(count, num_frames, sampling)

        def one_frame(slot):
            index, real = slot
            return tf.cond(real > 0, lambda: decode_frame(encoded[index], size),
                           lambda: tf.zeros([size, size, 3], tf.float32))

        frames = tf.map_fn(one_frame, (indices, mask),
                           fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32))
        return frames, mask

    frames, mask = tf.cond(one_gif, from_gif, from_frame_list)
    frames = frames * mask[:, tf.newaxis, tf.newaxis, tf.newaxis]
    return (tf.ensure_shape(frames, (num_frames, size, size, 3)),
            tf.ensure_shape(mask, (num_frames,)))


def decode_frame(image_bytes: tf.Tensor, size: int) -> tf.Tensor:
    """One encoded frame image -> float32 [size, size, 3] (the first frame of an animation)."""
    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
    return resize_frames(image[tf.newaxis], size)[0]
