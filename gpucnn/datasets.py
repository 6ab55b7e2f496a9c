"""Small real image datasets built from pictures bundled with scikit-image (no download)."""
import numpy as np

TEXTURE_NAMES = ("grass", "gravel")


def _crops(image, rows, count, size, rng):
    """``count`` random size×size crops whose rows lie in ``rows`` (start, stop), randomly flipped."""
    top = rng.integers(rows[0], rows[1] - size + 1, count)
    left = rng.integers(0, image.shape[1] - size + 1, count)
    crops = np.stack([image[t:t + size, l:l + size] for t, l in zip(top, left)])
    flip_rows, flip_cols = rng.random(count) < 0.5, rng.random(count) < 0.5
    crops[flip_rows] = crops[flip_rows, ::-1, :]
    crops[flip_cols] = crops[flip_cols, :, ::-1]
    return crops


def textures(train_per_class=256, validation_per_class=64, size=100, seed=0):
    """Two-class texture task: ``size``×``size``×1 crops of scikit-image's ``grass`` (label 0) and
    ``gravel`` (label 1) photographs (512×512 each), pixel values scaled to [0, 1].

    Training crops come from the top 384 rows of each photograph and validation crops from the bottom
    112 rows (rows 400-511), so no pixel appears in both sets.  Returns
    ``(x_train, y_train), (x_val, y_val)`` with float32 images (N, size, size, 1) and float32 labels (N,),
    each set shuffled.
    """
    from skimage import data

    if not 1 <= size <= 112:
        raise ValueError(f"Argument `size` must be in [1, 112] (the validation band is 112 rows), "
                         f"got {size!r}.")
    for name, value in (("train_per_class", train_per_class),
                        ("validation_per_class", validation_per_class)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"Argument `{name}` must be a positive int, got {value!r}.")
    rng = np.random.default_rng(seed)
    sets = []
    for rows, count in (((0, 384), train_per_class), ((400, 512), validation_per_class)):
        images, labels = [], []
        for label, name in enumerate(TEXTURE_NAMES):
            photo = getattr(data, name)().astype(np.float32) / 255.0
            images.append(_crops(photo, rows, count, size, rng))
            labels.append(np.full(count, label, np.float32))
        x, y = np.concatenate(images)[..., None], np.concatenate(labels)
        order = rng.permutation(len(x))
        sets.append((np.ascontiguousarray(x[order]), y[order]))
    return tuple(sets)


def faces(test_fraction=0.25, seed=0):
    """scikit-image's LFW subset: 100 face and 100 non-face 25×25 grayscale images, label 1 for faces.

    Returns ``(x_train, y_train), (x_test, y_test)``, float32 images (N, 25, 25, 1) in [0, 1] and float32
    labels, split at random (fixed ``seed``) with ``test_fraction`` of the images held out.
    """
    from skimage import data

    if not 0 < test_fraction < 1:
        raise ValueError(f"Argument `test_fraction` must be in (0, 1), got {test_fraction!r}.")
    images = data.lfw_subset().astype(np.float32)
    labels = np.concatenate([np.ones(100, np.float32), np.zeros(100, np.float32)])
    order = np.random.default_rng(seed).permutation(len(images))
    images, labels = images[order][..., None], labels[order]
    split = int(round(len(images) * (1 - test_fraction)))
    return (images[:split], labels[:split]), (images[split:], labels[split:])
