"""Reduction Numba kernels: per-channel column sums (bias gradient, batch-norm), softmax, losses.

Every sum is deterministic: threads accumulate fixed index sets, blocks reduce in shared memory with a
tree, and block results are combined in a fixed order (a second pass, or the last block to finish) —
never with float atomics, so the same inputs give the same bits on every run.  Only shared memory is
used (no warp shuffles), which also keeps the kernels runnable in Numba's CUDA simulator.
Block sizes must be powers of two of at most ``MAX_THREADS`` threads.
"""
import math

from numba import cuda, float32, int32

from ._numba import device, kernel
from .elementwise import sigmoid

MAX_THREADS = 256
VECTOR = "float32[::1]"

#: Keras' backend epsilon: probabilities are clipped to [EPSILON, 1 - EPSILON] before the log.
EPSILON = float32(1e-7)
ONE_MINUS_EPSILON = float32(1 - 1e-7)


@kernel(f"void({VECTOR}, {VECTOR}, {VECTOR}, {VECTOR}, boolean, int64, float32, {VECTOR})")
def column_sums(a, a_shift, b, b_shift, use_b, channels, scale, out):
    """out[part, c] = scale · Σ_rows v over this part's rows, v = (a - a_shift[c]) · (b - b_shift[c]) if
    use_b else (a - a_shift[c]); ``a`` and ``b`` are (rows, channels) matrices, flat.

    Block (bx, by): threadIdx.x picks the channel (coalesced rows), threadIdx.y strides over rows; the
    grid's y dimension splits the rows into ``gridDim.y`` parts, one output row each.  The launcher adds
    the parts with a second launch of this kernel (gridDim.y = 1), so the order of additions is fixed.
    """
    buffer = cuda.shared.array(MAX_THREADS, float32)
    tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
    c = cuda.blockIdx.x * cuda.blockDim.x + tx
    rows = a.size // channels
    total = float32(0)
    if c < channels:
        row_step = cuda.blockDim.y * cuda.gridDim.y
        for row in range(cuda.blockIdx.y * cuda.blockDim.y + ty, rows, row_step):
            i = row * channels + c
            value = a[i] - a_shift[c]
            if use_b:
                value *= b[i] - b_shift[c]
            total += value
    slot = ty * cuda.blockDim.x + tx
    buffer[slot] = total
    cuda.syncthreads()
    half = cuda.blockDim.y // 2
    while half > 0:
        if ty < half:
            buffer[slot] += buffer[slot + half * cuda.blockDim.x]
        cuda.syncthreads()
        half //= 2
    if ty == 0 and c < channels:
        out[cuda.blockIdx.y * channels + c] = buffer[tx] * scale


@device
def block_sum(buffer, value):
    """Sum of ``value`` over the (1-D, power-of-two) block, returned to every thread."""
    tid = cuda.threadIdx.x
    buffer[tid] = value
    cuda.syncthreads()
    half = cuda.blockDim.x // 2
    while half > 0:
        if tid < half:
            buffer[tid] += buffer[tid + half]
        cuda.syncthreads()
        half //= 2
    total = buffer[0]
    cuda.syncthreads()  # every thread has read the total before the buffer is reused
    return total


@device
def finish_loss(loss_sum, correct_sum, count, partials, blocks_done, loss, correct):
    """Reduce each thread's (loss, correct) sums to loss[0] = Σ loss / count and correct[0] = Σ correct.

    Each block writes its totals to ``partials``; the last block to finish (counted with an integer
    atomic on ``blocks_done``, which must start at 0) adds all partials in block order.  One launch, and
    deterministic: which block comes last changes nothing in the order of the additions.
    """
    buffer = cuda.shared.array(MAX_THREADS, float32)
    is_last = cuda.shared.array(1, int32)
    block_loss = block_sum(buffer, loss_sum)
    block_correct = block_sum(buffer, correct_sum)
    tid, block, blocks = cuda.threadIdx.x, cuda.blockIdx.x, cuda.gridDim.x
    if tid == 0:
        partials[2 * block] = block_loss
        partials[2 * block + 1] = block_correct
        cuda.threadfence()  # the partials are visible to the last block before it is counted
        is_last[0] = cuda.atomic.add(blocks_done, 0, 1) == blocks - 1
    cuda.syncthreads()
    if is_last[0]:
        loss_sum = float32(0)
        correct_sum = float32(0)
        for other in range(tid, blocks, cuda.blockDim.x):
            loss_sum += partials[2 * other]
            correct_sum += partials[2 * other + 1]
        total_loss = block_sum(buffer, loss_sum)
        total_correct = block_sum(buffer, correct_sum)
        if tid == 0:
            loss[0] = total_loss / count
            correct[0] = total_correct


# ---- softmax over the last axis: one thread per row (rows are short: class scores) ------------------

@kernel(f"void({VECTOR}, {VECTOR}, int64)")
def softmax_forward(x, y, classes):
    for row in range(cuda.grid(1), x.size // classes, cuda.gridsize(1)):
        base = row * classes
        largest = x[base]
        for k in range(1, classes):
            largest = max(largest, x[base + k])
        total = float32(0)
        for k in range(classes):
            e = math.exp(x[base + k] - largest)
            y[base + k] = e
            total += e
        for k in range(classes):
            y[base + k] /= total


@kernel(f"void({VECTOR}, {VECTOR}, {VECTOR}, int64)")
def softmax_backward(dy, y, dx, classes):
    """dx = y·(dy - Σ dy·y) over each row."""
    for row in range(cuda.grid(1), y.size // classes, cuda.gridsize(1)):
        base = row * classes
        dot = float32(0)
        for k in range(classes):
            dot += dy[base + k] * y[base + k]
        for k in range(classes):
            dx[base + k] = (dy[base + k] - dot) * y[base + k]


# ---- losses: gradient, summed loss and correct count in one launch ----------------------------------

LOSS_OUTPUTS = f"{VECTOR}, {VECTOR}, int32[::1], {VECTOR}, {VECTOR}"  # grad, partials, blocks_done, loss, correct


@device
def sample_weight_of(sample_weight, weighted, row):
    """The loss weight of sample ``row``: its entry of ``sample_weight`` when ``weighted``, else 1."""
    return sample_weight[row] if weighted else float32(1)


@kernel(f"void({VECTOR}, {VECTOR}, {VECTOR}, boolean, int64, boolean, float32, float32, float32, "
        f"{LOSS_OUTPUTS})")
def binary_crossentropy(outputs, labels, sample_weight, weighted, units, from_logits, keep, offset, count, grad,
                        partials, blocks_done, loss, correct):
    """Element-wise binary cross-entropy of probabilities or logits against the targets
    t = y·keep + offset (label smoothing; keep 1, offset 0 without); ``count`` = number of elements.
    The correct count compares with the labels y themselves.

    When ``weighted``, the loss and gradient of each element are multiplied by its sample's weight
    (``units`` elements per sample); the correct count is not weighted.
    """
    loss_sum = float32(0)
    correct_sum = float32(0)
    for i in range(cuda.grid(1), outputs.size, cuda.gridsize(1)):
        value, y = outputs[i], labels[i]
        t = y * keep + offset
        w = sample_weight_of(sample_weight, weighted, i // units)
        if from_logits:
            loss_sum += w * (max(value, float32(0)) - value * t + math.log1p(math.exp(-abs(value))))
            grad[i] = w * (sigmoid(value, float32(0)) - t) / count
            predicted = float32(1) if value > 0 else float32(0)
        else:
            p = min(max(value, EPSILON), ONE_MINUS_EPSILON)
            loss_sum -= w * (t * math.log(p) + (float32(1) - t) * math.log(float32(1) - p))
            clipped = value < EPSILON or value > ONE_MINUS_EPSILON
            grad[i] = float32(0) if clipped else w * ((float32(1) - t) / (float32(1) - p) - t / p) / count
            predicted = float32(1) if value > float32(0.5) else float32(0)
        if predicted == y:
            correct_sum += float32(1)
    finish_loss(loss_sum, correct_sum, count, partials, blocks_done, loss, correct)


@device
def label_value(dense_labels, class_labels, sparse, row, base, k):
    """y[row, k]: a one-hot of the int label when ``sparse``, else the dense label."""
    if sparse:
        return float32(1) if class_labels[row] == k else float32(0)
    return dense_labels[base + k]


@device
def target_value(dense_labels, class_labels, sparse, row, base, k, keep, offset):
    """The (smoothed) target y[row, k]·keep + offset."""
    return label_value(dense_labels, class_labels, sparse, row, base, k) * keep + offset


@kernel(f"void({VECTOR}, {VECTOR}, int32[::1], {VECTOR}, boolean, boolean, boolean, float32, float32, int64, "
        f"float32, {LOSS_OUTPUTS})")
def categorical_crossentropy(outputs, dense_labels, class_labels, sample_weight, weighted, sparse, from_logits,
                             keep, offset, classes, count, grad, partials, blocks_done, loss, correct):
    """Categorical cross-entropy of (rows, classes) probabilities or logits, one thread per row.

    Labels are dense rows, or int class indices when ``sparse`` (the other labels array is unused);
    the loss uses the targets t = y·keep + offset (label smoothing; keep 1, offset 0 without), the
    correct count the labels y.  ``count`` = number of rows.  Argmax ties go to the first index, for
    outputs and labels alike.  When ``weighted``, each row's loss and gradient are multiplied by
    ``sample_weight[row]``.
    """
    loss_sum = float32(0)
    correct_sum = float32(0)
    for row in range(cuda.grid(1), outputs.size // classes, cuda.gridsize(1)):
        base = row * classes
        w = sample_weight_of(sample_weight, weighted, row)
        # Pass 1: argmax of outputs and labels, the row maximum (logits) or row sum (probabilities).
        best_k, label_k = 0, 0
        best = outputs[base]
        label_best = label_value(dense_labels, class_labels, sparse, row, base, 0)
        label_total = float32(0)
        row_sum = float32(0)
        for k in range(classes):
            value = outputs[base + k]
            y = label_value(dense_labels, class_labels, sparse, row, base, k)
            if value > best:
                best, best_k = value, k
            if y > label_best:
                label_best, label_k = y, k
            label_total += y * keep + offset
            row_sum += value
        if best_k == label_k:
            correct_sum += float32(1)
        if from_logits:
            # -Σ y log softmax(z) = Σ y (log Σ exp(z - max) - (z - max)); dz = (softmax·Σy - y) / N.
            exp_total = float32(0)
            for k in range(classes):
                exp_total += math.exp(outputs[base + k] - best)
            log_total = math.log(exp_total)
            for k in range(classes):
                shifted = outputs[base + k] - best
                t = target_value(dense_labels, class_labels, sparse, row, base, k, keep, offset)
                loss_sum += w * t * (log_total - shifted)
                grad[base + k] = w * (math.exp(shifted) / exp_total * label_total - t) / count
        else:
            # q = p / Σp clipped; g = dL/dq = -y/q / N where the clip passed; dL/dp = (g - Σ g·q) / Σp.
            dot = float32(0)
            for k in range(classes):
                q = outputs[base + k] / row_sum
                clipped = q < EPSILON or q > ONE_MINUS_EPSILON
                q_clipped = min(max(q, EPSILON), ONE_MINUS_EPSILON)
                t = target_value(dense_labels, class_labels, sparse, row, base, k, keep, offset)
                loss_sum -= w * t * math.log(q_clipped)
                g = float32(0) if clipped else -w * t / q_clipped / count
                grad[base + k] = g
                dot += g * q
            for k in range(classes):
                grad[base + k] = (grad[base + k] - dot) / row_sum
    finish_loss(loss_sum, correct_sum, count, partials, blocks_done, loss, correct)


@kernel(f"void({VECTOR}, {VECTOR}, {VECTOR}, boolean, int64, int64, float32, {LOSS_OUTPUTS})")
def mean_squared_error(outputs, labels, sample_weight, weighted, units, width, count, grad, partials,
                       blocks_done, loss, correct):
    """mean((p - y)²) over ``count`` elements, one thread per row of ``width`` (the last axis);
    grad = 2(p - y) / count, each element's terms times its sample's weight when ``weighted``
    (``units`` elements per sample).
    Correct: (p > 0.5) == y per element when width is 1, else one per row where argmax p == argmax y
    (first index on ties) — Keras' 'accuracy' for these outputs."""
    loss_sum = float32(0)
    correct_sum = float32(0)
    for row in range(cuda.grid(1), outputs.size // width, cuda.gridsize(1)):
        base = row * width
        w = sample_weight_of(sample_weight, weighted, base // units)
        best_k, label_k = 0, 0
        best, label_best = outputs[base], labels[base]
        for k in range(width):
            value, y = outputs[base + k], labels[base + k]
            difference = value - y
            loss_sum += w * difference * difference
            grad[base + k] = w * float32(2) * difference / count
            if value > best:
                best, best_k = value, k
            if y > label_best:
                label_best, label_k = y, k
        if width == 1:
            predicted = float32(1) if best > float32(0.5) else float32(0)
            if predicted == label_best:
                correct_sum += float32(1)
        elif best_k == label_k:
            correct_sum += float32(1)
    finish_loss(loss_sum, correct_sum, count, partials, blocks_done, loss, correct)


# ---- gradient clipping by norm: per-variable square sums, clip factors, scaled copy -------------------

@kernel(f"void({VECTOR}, int64[::1], {VECTOR})")
def segment_square_sums(grad, offsets, partials):
    """partials[s·parts + p] = Σ g² over part p of variable s (the slice offsets[s]:offsets[s+1]); the
    grid is (parts, variables) and part p takes every parts-th block-sized chunk of its variable, so
    the sums depend only on the shapes (deterministic)."""
    buffer = cuda.shared.array(MAX_THREADS, float32)
    part, segment, parts = cuda.blockIdx.x, cuda.blockIdx.y, cuda.gridDim.x
    total = float32(0)
    step = parts * cuda.blockDim.x
    for i in range(offsets[segment] + part * cuda.blockDim.x + cuda.threadIdx.x, offsets[segment + 1], step):
        total += grad[i] * grad[i]
    total = block_sum(buffer, total)
    if cuda.threadIdx.x == 0:
        partials[segment * parts + part] = total


@kernel(f"void({VECTOR}, int64, float32, boolean, {VECTOR})")
def clip_factors(partials, parts, clipnorm, global_norm, factors):
    """Per variable s: factors[s] = clipnorm / max(‖g_s‖, clipnorm) (Keras' clipnorm), or with
    ``global_norm`` the same factor clipnorm·min(1/‖g‖, 1/clipnorm) + (‖g‖ - ‖g‖) for every variable,
    ‖g‖ over all of them (Keras' global_clipnorm: NaN when the norm is not finite)."""
    segments = factors.size
    for segment in range(cuda.grid(1), segments, cuda.gridsize(1)):
        first, last = (0, segments) if global_norm else (segment, segment + 1)
        total = float32(0)
        for i in range(first * parts, last * parts):
            total += partials[i]
        norm = math.sqrt(total)
        if global_norm:
            inverse = float32(1) / norm if norm > 0 else float32(math.inf)
            factors[segment] = clipnorm * min(inverse, float32(1) / clipnorm) + (norm - norm)
        else:
            factors[segment] = clipnorm / max(norm, clipnorm)


@kernel(f"void({VECTOR}, int64[::1], {VECTOR}, {VECTOR})")
def scale_segments(grad, offsets, factors, out):
    """out = grad · factors[s] over each variable s; grid (blocks, variables), grid-stride per variable."""
    segment = cuda.blockIdx.y
    factor = factors[segment]
    step = cuda.gridDim.x * cuda.blockDim.x
    start = offsets[segment] + cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    for i in range(start, offsets[segment + 1], step):
        out[i] = grad[i] * factor
