"""The config fields of the video modality, checked (`tfmm.config` calls `check_video_config`).

    data.video_frames    frames per clip the model sees (T)
    data.video_size      frames are resized to video_size x video_size x 3 (InceptionV3: >= 75)
    data.video_sampling  "uniform" (T frames spread evenly over the clip) | "first" (the first T)

README "Video" shows the manifest field and how to convert MP4 and other containers.
"""

VIDEO_SAMPLING_CHOICES = ("uniform", "first")
MIN_VIDEO_SIZE = 75  # keras.applications.InceptionV3's smallest input


def check_video_config(config):
    """Raises ConfigError for video settings the frame encoder or the sampler cannot run."""
    from tfmm.config import ConfigError, check_choice

    data = config.data
    check_choice("data.video_sampling", data.video_sampling, VIDEO_SAMPLING_CHOICES)
    if "video" not in data.modalities:
        return
    if data.video_frames <= 0:
        raise ConfigError(f"`data.video_frames` must be > 0. Received: {data.video_frames}")
    if data.video_size < MIN_VIDEO_SIZE:
        raise ConfigError(f"`data.video_size` must be >= {MIN_VIDEO_SIZE} (InceptionV3's "
                          f"smallest input). Received: {data.video_size}")
