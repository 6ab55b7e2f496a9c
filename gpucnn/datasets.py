"""Small real image datasets built from pictures bundled with scikit-image (no download)."""
import numpy as np

TEXTURE_NAMES = ("grass", "gravel")
# scikit-image's bundled 512x512 grayscale texture photographs (a class each in ``textures(names=...)``).
BUNDLED_TEXTURES = ("brick", "grass", "gravel")


def _crops(image, rows, count, size, rng):
    """``count`` random size×size crops whose rows lie in ``rows`` (start, stop), randomly flipped."""
    top = rng.integers(rows[0], rows[1] - size + 1, count)
    left = rng.integers(0, image.shape[1] - size + 1, count)
    crops = np.stack([image[t:t + size, l:l + size] for t, l in zip(top, left)])
    flip_rows, flip_cols = rng.random(count) < 0.5, rng.random(count) < 0.5
    crops[flip_rows] = crops[flip_rows, ::-1, :]
    crops[flip_cols] = crops[flip_cols, :, ::-1]
    return crops


def textures(train_per_class=256, validation_per_class=64, size=100, seed=0, names=TEXTURE_NAMES):
    """Texture task: ``size``×``size``×1 crops of scikit-image's photographs ``names`` (512×512 each;
    label = position in ``names``, by default ``grass`` 0 and ``gravel`` 1; any of
    ``BUNDLED_TEXTURES``), pixel values scaled to [0, 1].

    Training crops come from the top 384 rows of each photograph and validation crops from the bottom
    112 rows (rows 400-511), so no pixel appears in both sets.  Returns
    ``(x_train, y_train), (x_val, y_val)`` with float32 images (N, size, size, 1) and float32 labels (N,),
    each set shuffled.
    """
    from skimage import data

    for name, value in (("train_per_class", train_per_class),
                        ("validation_per_class", validation_per_class), ("size", size)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"Argument `{name}` must be a positive int, got {value!r}.")
    if size > 112:
        raise ValueError(f"Argument `size` must be at most 112 (the validation band is 112 rows), "
                         f"got {size!r}. Fix: use a smaller crop size.")
    names = tuple(names) if isinstance(names, (list, tuple)) else names
    if not isinstance(names, tuple) or len(names) < 2 or len(set(names)) != len(names) or \
            any(name not in BUNDLED_TEXTURES for name in names):
        raise ValueError(f"Argument `names` must list at least 2 distinct texture names out of "
                         f"{BUNDLED_TEXTURES}, got {names!r}.")
    rng = np.random.default_rng(seed)
    photos = [getattr(data, name)().astype(np.float32) / 255.0 for name in names]
    sets = []
    for rows, count in (((0, 384), train_per_class), ((400, 512), validation_per_class)):
        images = np.concatenate([_crops(photo, rows, count, size, rng) for photo in photos])[..., None]
        labels = np.repeat(np.arange(len(photos), dtype=np.float32), count)
        order = rng.permutation(len(images))
        sets.append((np.ascontiguousarray(images[order]), labels[order]))
    return tuple(sets)


def faces(test_fraction=0.25, seed=0):
    """scikit-image's LFW subset: 100 face and 100 non-face 25×25 grayscale images, label 1 for faces.

    Returns ``(x_train, y_train), (x_test, y_test)``, float32 images (N, 25, 25, 1) in [0, 1] and float32
    labels, split at random (fixed ``seed``) with ``test_fraction`` of the images held out.
    """
    from skimage import data

    images = data.lfw_subset().astype(np.float32)
    split = int(round(len(images) * (1 - test_fraction))) if 0 < test_fraction < 1 else 0
    if not 0 < split < len(images):
        raise ValueError(f"Argument `test_fraction` must leave at least one of the {len(images)} images in "
                         f"each set, got {test_fraction!r}. Fix: use a fraction such as 0.25.")
    labels = np.concatenate([np.ones(100, np.float32), np.zeros(100, np.float32)])
    order = np.random.default_rng(seed).permutation(len(images))
    images, labels = images[order][..., None], labels[order]
    return (images[:split], labels[:split]), (images[split:], labels[split:])
