"""The one preprocessing layer shared by training (tf.data) and serving (SavedModel signature)."""

import keras
import tensorflow as tf

from tfmm.preprocessing.decoding import decode_audio, decode_audio_batch, decode_image
from tfmm.preprocessing.text_preprocessor import build_text_preprocessor
from tfmm.preprocessing.video_decoding import decode_video_frames

MASK_SUFFIX = "_mask"
VIDEO_FRAME_MASK = "video_frame_mask"


@keras.saving.register_keras_serializable(package="tfmm")
class MultimodalPreprocessor(keras.layers.Layer):
    """Raw inputs (strings, encoded image bytes, WAV bytes) -> fixed-shape model inputs.

    An empty string (or blank text) stands for a missing modality: its `<modality>_mask` is 0 and its tensor is
    a placeholder that the fusion layer never reads. Works on one example (scalar strings, as in
    `tf.data` `map`) or on a batch (rank-1 strings, as in the serving signature).

    Args:
        modalities: subset of ("text", "image", "audio", "video").
        text_preset: BERT preset whose WordPiece vocabulary tokenizes the text.
        text_sequence_length: tokens per text, [CLS] and [SEP] included.
        image_size: images become [image_size, image_size, 3] float32 in [0, 255].
        audio_sample_rate: Hz the model expects.
        audio_length: samples per waveform.
        resample_audio: resample other sample rates (True) or reject them (False).
        video_frames: T, frames per video; video_size: S, frames become [S, S, 3];
        video_sampling: "uniform" | "first" (`tfmm.preprocessing.video_decoding`).
        optional_modalities: modalities an example may lack (""), as `data.optional_modalities`;
            the preprocessor masks any "" out, the serving signature rejects "" for the others.

    Input: dict with a tf.string entry ("text", "image", "audio", "video") per modality, shape []
        or [B]; "video" holds GIF bytes ([] or [B]) or rows of frame images ([B, F], "" padding
        at the end of each row; the data pipeline reads frame folders so).
    Output: dict with, per modality present, text: "token_ids", "segment_ids", "padding_mask"
        (int32 [B, text_sequence_length]); image: "image" (float32 [B, S, S, 3]); audio: "audio"
        (float32 [B, audio_length]); video: "video" (float32 [B, T, S, S, 3] in [0, 255]) and
        "video_frame_mask" (float32 [B, T], 1 = real frame, 0 = padding of a short clip); and
        "<modality>_mask" (float32 [B], 1 = present).

    Example:
        preprocessor = MultimodalPreprocessor(("text", "image"), text_preset="minilm")
        features = preprocessor({"text": ["which digit?"], "image": [png_bytes]})
    """

    def __init__(self, modalities=("text", "image", "audio"), text_preset="minilm",
                 text_sequence_length=32, image_size=32, audio_sample_rate=8000,
                 audio_length=8000, resample_audio=True, optional_modalities=(),
                 video_frames=8, video_size=75, video_sampling="uniform", **kwargs):
        super().__init__(**kwargs)
        self.modalities = tuple(modalities)
        self.text_preset = text_preset
        self.text_sequence_length = text_sequence_length
        self.image_size = image_size
        self.audio_sample_rate = audio_sample_rate
        self.audio_length = audio_length
        self.resample_audio = resample_audio
        self.optional_modalities = tuple(optional_modalities)
        self.video_frames = video_frames
        self.video_size = video_size
        self.video_sampling = video_sampling
        self.text_preprocessor = None
        if "text" in self.modalities:
            self.text_preprocessor = build_text_preprocessor(text_preset, text_sequence_length)
        # Strings in, tensors out: Keras must not try to cast the raw inputs.
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        self.built = True

    def call(self, inputs):
        missing = [name for name in self.modalities if name not in inputs]
        if missing:
            raise ValueError(f"MultimodalPreprocessor expects inputs {list(self.modalities)}; "
                             f"missing {missing}. Received keys: {sorted(inputs)}")
        outputs = {}
        if "text" in self.modalities:
            text = tf.convert_to_tensor(inputs["text"], tf.string)
            packed = self.text_preprocessor(text)
            outputs["token_ids"] = tf.cast(packed["token_ids"], tf.int32)
            outputs["segment_ids"] = tf.cast(packed["segment_ids"], tf.int32)
            outputs["padding_mask"] = tf.cast(packed["padding_mask"], tf.int32)
            # Blank text counts as missing, as in the manifest reader.
            outputs["text" + MASK_SUFFIX] = _presence(tf.strings.strip(text))
        if "image" in self.modalities:
            outputs["image"], outputs["image" + MASK_SUFFIX] = self._decode(
                inputs["image"], self._decode_image, (self.image_size, self.image_size, 3))
        if "audio" in self.modalities:
            audio = tf.convert_to_tensor(inputs["audio"], tf.string)
            if audio.shape.rank == 0:
                outputs["audio"], outputs["audio" + MASK_SUFFIX] = self._decode(
                    audio, self._decode_audio, (self.audio_length,))
            else:  # whole-batch decoding of the common WAV layout; see decode_audio_batch
                outputs["audio"] = decode_audio_batch(audio, self.audio_sample_rate,
                                                      self.audio_length, self.resample_audio)
                outputs["audio" + MASK_SUFFIX] = _presence(audio)
        if "video" in self.modalities:
            outputs.update(self._decode_videos(inputs["video"]))
        return outputs

    def _decode_videos(self, encoded):
        """"video", "video_frame_mask" and "video_mask" of GIF bytes or rows of frame images."""
        encoded = tf.convert_to_tensor(encoded, tf.string)
        frames_shape = (self.video_frames, self.video_size, self.video_size, 3)

        def decode_or_placeholder(item):
            present = tf.reduce_any(tf.strings.length(item) > 0)
            return tf.cond(present, lambda: decode_video_frames(
                item, self.video_frames, self.video_size, self.video_sampling),
                lambda: (tf.zeros(frames_shape), tf.zeros([self.video_frames])))

        if encoded.shape.rank == 0:
            frames, frame_mask = decode_or_placeholder(encoded)
            present = _presence(encoded)
        else:
            frames, frame_mask = tf.map_fn(
                decode_or_placeholder, encoded, fn_output_signature=(
                    tf.TensorSpec(frames_shape, tf.float32),
                    tf.TensorSpec([self.video_frames], tf.float32)))
            lengths = tf.strings.length(encoded)
            present = tf.cast((lengths if encoded.shape.rank == 1
                               else tf.reduce_max(lengths, axis=1)) > 0, tf.float32)
        return {"video": frames, VIDEO_FRAME_MASK: frame_mask, "video" + MASK_SUFFIX: present}

    def _decode_image(self, image_bytes):
        return decode_image(image_bytes, self.image_size)

    def _decode_audio(self, wav_bytes):
        return decode_audio(wav_bytes, self.audio_sample_rate, self.audio_length,
                            self.resample_audio)

    def _decode(self, encoded, decode_one, shape):
        """Decodes present entries, gives missing ones a placeholder; returns (tensor, mask)."""
        encoded = tf.convert_to_tensor(encoded, tf.string)

        def decode_or_placeholder(item):
            return tf.cond(tf.strings.length(item) > 0, lambda: decode_one(item),
                           lambda: tf.zeros(shape, tf.float32))

        if encoded.shape.rank == 0:
            decoded = decode_or_placeholder(encoded)
        else:
            decoded = tf.map_fn(decode_or_placeholder, encoded,
                                fn_output_signature=tf.TensorSpec(shape, tf.float32))
        return decoded, _presence(encoded)

    def get_config(self):
        config = super().get_config()
        config.update({
            "modalities": list(self.modalities),
            "text_preset": self.text_preset,
            "text_sequence_length": self.text_sequence_length,
            "image_size": self.image_size,
            "audio_sample_rate": self.audio_sample_rate,
            "audio_length": self.audio_length,
            "resample_audio": self.resample_audio,
            "optional_modalities": list(self.optional_modalities),
            "video_frames": self.video_frames,
            "video_size": self.video_size,
            "video_sampling": self.video_sampling,
        })
        return config

    @classmethod
    def from_data_config(cls, data_config, text_preset):
        """Builds the preprocessor that a `tfmm.config.DataConfig` describes."""
        return cls(modalities=data_config.modalities, text_preset=text_preset,
                   text_sequence_length=data_config.text_sequence_length,
                   image_size=data_config.image_size,
                   audio_sample_rate=data_config.audio_sample_rate,
                   audio_length=data_config.audio_length,
                   resample_audio=data_config.resample_audio,
                   optional_modalities=data_config.optional_modalities,
                   video_frames=data_config.video_frames, video_size=data_config.video_size,
                   video_sampling=data_config.video_sampling)


def _presence(encoded: tf.Tensor) -> tf.Tensor:
    return tf.cast(tf.strings.length(encoded) > 0, tf.float32)
