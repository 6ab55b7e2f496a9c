"""The op contract package: every backend rejects a bad argument in its words, its activation codes match
the CUDA enum, and it depends on no backend."""
import ast
import pathlib
import re

import numpy as np
import pytest
from ops import on_backends

from gpucnn.contract.activations import ACTIVATION_CODES, FUSED_ACTIVATIONS
from gpucnn.cuda import runtime

CONTRACT_DIR = pathlib.Path(__file__).resolve().parents[1] / "gpucnn" / "contract"


def _cuda_enum(text, name):
    """{enumerator: value} of ``enum <name> { A = 0, B = 1 };`` in CUDA C source ``text``."""
    body = re.search(rf"\benum\s+{name}\s*{{([^}}]*)}}", text).group(1)
    pairs = (item.split("=") for item in body.split(",") if item.strip())
    return {key.strip(): int(value) for key, value in pairs}


def test_activation_codes_match_the_enum_in_common_cuh():
    enum = _cuda_enum(runtime.kernel_source("common.cuh"), "Activation")
    assert enum == {f"ACT_{name.upper()}": code for name, code in ACTIVATION_CODES.items()}
    assert tuple(ACTIVATION_CODES) == FUSED_ACTIVATIONS


def test_enum_parser_sees_a_drift():
    assert _cuda_enum("enum Activation { ACT_LINEAR = 0, ACT_RELU = 2 };", "Activation") == {
        "ACT_LINEAR": 0, "ACT_RELU": 2}


def test_contract_imports_no_backend_and_no_layer():
    for path in sorted(CONTRACT_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                modules = [node.module or ""] if node.level == 0 else []
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            for module in modules:
                assert module.split(".")[0] in ("numbers", "math", "typing", "numpy"), (path.name, module)


def _zeros(*shape, dtype=np.float32):
    return np.zeros(shape, dtype)


X4, W4 = _zeros(1, 5, 5, 2), _zeros(3, 3, 2, 4)
X2, W2 = _zeros(2, 3), _zeros(3, 4)
PARAM, STEP = _zeros(4), np.ones(1, np.int64)
LOGITS = _zeros(4, 3)


def _adam(step, v=PARAM):
    return lambda ops: ops.adam_update(PARAM.copy(), PARAM, PARAM.copy(), v.copy(), step, 1e-3, 0.9, 0.999, 1e-7)


# (call on an op namespace, error, message): each a contract check, so every backend raises it in the same words.
BAD_CALLS = {
    "conv-activation": (lambda ops: ops.conv2d_forward(X4, W4, None, (1, 1), "same", "elu"), ValueError,
                        "`activation` must be one of 'linear', 'relu', 'leaky_relu', 'sigmoid', 'tanh', got 'elu'"),
    "conv-channels": (lambda ops: ops.conv2d_forward(_zeros(1, 5, 5, 1), W4, None, (1, 1), "same"), ValueError,
                      r"`w` has 2 input channels but the input has 1. Fix: .*\(kh, kw, 1, filters\)"),
    "conv-x-rank": (lambda ops: ops.conv2d_forward(X4[0], W4, None, (1, 1), "same"), ValueError,
                    r"`x` must have rank 4 \(NHWC.*got shape \(5, 5, 2\)"),
    "conv-w-rank": (lambda ops: ops.conv2d_forward(X4, W4[0], None, (1, 1), "same"), ValueError,
                    r"`w` must have rank 4 \(an HWIO conv kernel"),
    "conv-bias": (lambda ops: ops.conv2d_forward(X4, W4, _zeros(3), (1, 1), "same"), ValueError,
                  r"`b` must have shape \(4,\) \(one bias per filter\), got \(3,\)"),
    "conv-padding": (lambda ops: ops.conv2d_forward(X4, W4, None, (1, 1), "full"), ValueError,
                     "`padding` must be 'valid' or 'same', got 'full'"),
    "conv-strides": (lambda ops: ops.conv2d_forward(X4, W4, None, (0, 1), "same"), ValueError,
                     "`strides` must contain only positive integers"),
    "conv-misfit": (lambda ops: ops.conv2d_forward(_zeros(1, 2, 5, 2), W4, None, (1, 1), "valid"), ValueError,
                    r"kernel_size \(3, 3\) does not fit in the 2x5 input with padding='valid'"),
    "conv-data-dy": (lambda ops: ops.conv2d_backward_data(_zeros(1, 3, 3, 5), W4, X4.shape, (1, 1), "valid"),
                     ValueError, r"`dy` must have shape \(1, 3, 3, 4\) \(the output shape\)"),
    "conv-x-shape": (lambda ops: ops.conv2d_backward_data(_zeros(1, 3, 3, 4), W4, (5, 5, 2), (1, 1), "valid"),
                     ValueError, "`x_shape` must be 4 positive ints"),
    "conv-filter-dy": (lambda ops: ops.conv2d_backward_filter(X4, _zeros(1, 4, 3, 4), (3, 3), (1, 1), "valid"),
                       ValueError, r"`dy` must have shape \(1, 3, 3, 4\)"),
    "conv-precision": (lambda ops: ops.conv2d_forward(X4, W4, None, (1, 1), "same", precision="tf32"), ValueError,
                       "`precision` must be one of 'highest', 'high', 'medium' .*got 'tf32'. Fix: use 'highest'"),
    "conv-data-precision": (lambda ops: ops.conv2d_backward_data(_zeros(1, 3, 3, 4), W4, X4.shape, (1, 1), "valid",
                                                                precision="HIGH"), ValueError, "`precision`.*'HIGH'"),
    "conv-filter-precision": (lambda ops: ops.conv2d_backward_filter(X4, _zeros(1, 3, 3, 4), (3, 3), (1, 1), "valid",
                                                                    precision=32), ValueError, "`precision`.*got 32"),
    "dense-activation": (lambda ops: ops.dense_forward(X2, W2, None, "softmax"), ValueError, "`activation`"),
    "dense-features": (lambda ops: ops.dense_forward(X2, _zeros(5, 4), None), ValueError,
                       r"`w` has 5 input features but x has 3. Fix: .*\(3, units\)"),
    "dense-rank": (lambda ops: ops.dense_forward(_zeros(2, 3, 1), W2, None), ValueError,
                   r"`x` must have rank 2 \(a matrix.*Fix: flatten the input"),
    "dense-bias": (lambda ops: ops.dense_forward(X2, W2, _zeros(3)), ValueError, r"`b` must have shape \(4,\)"),
    "dense-data-dy": (lambda ops: ops.dense_backward_data(_zeros(2, 5), W2), ValueError,
                      "`dy` has 5 columns but w has 4 units"),
    "dense-weights-batch": (lambda ops: ops.dense_backward_weights(X2, _zeros(3, 4)), ValueError,
                            "`x` and `dy` must have the same batch size, got 2 and 3"),
    "dense-precision": (lambda ops: ops.dense_forward(X2, W2, None, precision="low"), ValueError,
                        "`precision` must be one of .*got 'low'"),
    "dense-data-precision": (lambda ops: ops.dense_backward_data(_zeros(2, 4), W2, precision=""), ValueError,
                             "`precision`.*got ''"),
    "dense-weights-precision": (lambda ops: ops.dense_backward_weights(X2, _zeros(2, 4), precision="fp16"),
                                ValueError, "`precision`.*'fp16'"),
    "pool-misfit": (lambda ops: ops.max_pool_forward(_zeros(1, 4, 4, 1), (5, 5), (1, 1), "valid"), ValueError,
                    r"pool_size \(5, 5\) does not fit"),
    "pool-rank": (lambda ops: ops.max_pool_forward(_zeros(4, 4, 2), (2, 2), (2, 2), "valid"), ValueError,
                  "`x` must have rank 4"),
    "pool-dy": (lambda ops: ops.max_pool_backward(_zeros(1, 3, 3, 2), _zeros(1, 2, 2, 2, dtype=np.int32),
                                                  (1, 4, 4, 2), (2, 2), (2, 2), "valid"), ValueError,
                r"`dy` must have shape \(1, 2, 2, 2\) \(the pooled shape"),
    "pool-argmax": (lambda ops: ops.max_pool_backward(_zeros(1, 2, 2, 2), _zeros(1, 2, 1, 2, dtype=np.int32),
                                                      (1, 4, 4, 2), (2, 2), (2, 2), "valid"), ValueError,
                    "`argmax` must have shape"),
    "gradient-y": (lambda ops: ops.relu_backward(X2, _zeros(3, 2)), ValueError,
                   r"`y` must have shape \(2, 3\) \(the shape of dy\)"),
    "leaky-alpha": (lambda ops: ops.leaky_relu_forward(X2, -0.1), ValueError,
                    r"`alpha` \(the leaky slope\) must be a finite float >= 0, got -0.1"),
    "leaky-alpha-inf": (lambda ops: ops.leaky_relu_backward(X2, X2, float("inf")), ValueError,
                        "`alpha` .* must be a finite float >= 0, got inf"),
    "tanh-y": (lambda ops: ops.tanh_backward(X2, _zeros(3, 2)), ValueError,
               r"`y` must have shape \(2, 3\) \(the shape of dy\)"),
    "softmax-0d": (lambda ops: ops.softmax_forward(_zeros()), ValueError, "`x` must have at least one axis"),
    "bias-add": (lambda ops: ops.bias_add(X2, _zeros(2)), ValueError, r"`b` must have shape \(3,\)"),
    "dropout-rate": (lambda ops: ops.dropout_forward(X2, 1.0, 0, STEP), ValueError, r"`rate` .* \[0, 1\)"),
    "dropout-seed": (lambda ops: ops.dropout_forward(X2, 0.5, 2**32, STEP), ValueError, r"`seed` .* \[0, 2\*\*32\)"),
    "step-not-array": (lambda ops: ops.dropout_forward(X2, 0.5, 0, 3), TypeError,
                       "`step` must be a 1-element int64 array .*got 3"),
    "step-dtype": (lambda ops: ops.dropout_backward(X2, 0.5, 0, _zeros(1, dtype=np.int32)), TypeError,
                   "`step` .*int64.*got an array of dtype int32"),
    "step-shape": (lambda ops: ops.dropout_forward(X2, 0.5, 0, _zeros(2, dtype=np.int64)), ValueError,
                   r"`step` must be a 1-element .*got shape \(2,\)"),
    "adam-step": (_adam(1), TypeError, "`step` .*got 1"),
    "adam-v": (_adam(STEP, _zeros(5)), ValueError, r"`v` must have shape \(4,\) \(the shape of param\)"),
    "sgd-grad": (lambda ops: ops.sgd_update(PARAM.copy(), _zeros(3), None, 0.1, 0.0, False), ValueError, "`grad`"),
    "sgd-velocity": (lambda ops: ops.sgd_update(PARAM.copy(), PARAM, None, 0.1, 0.9, False), ValueError,
                     "`velocity` is required when momentum is 0.9"),
    "binary-labels": (lambda ops: ops.sigmoid_binary_crossentropy(LOGITS, _zeros(4)), ValueError,
                      r"`labels` must have the shape of `logits` \(4, 3\), got \(4,\)"),
    "categorical-labels": (lambda ops: ops.softmax_categorical_crossentropy(LOGITS, _zeros(4, 2)), ValueError,
                           r"`labels` must have shape \(4, 3\) \(the shape of `logits`\)"),
    "categorical-rank": (lambda ops: ops.categorical_crossentropy(_zeros(4), _zeros(4)), ValueError,
                         "`probs` must have rank 2"),
    "sparse-labels": (lambda ops: ops.sparse_categorical_crossentropy(LOGITS, _zeros(5, dtype=np.int32)),
                      ValueError, r"`labels` must be integer class indices of shape \(4,\) or \(4, 1\)"),
    "smoothing-binary": (lambda ops: ops.binary_crossentropy(LOGITS, LOGITS, 1.5), ValueError,
                         r"`label_smoothing` must be a float in \[0, 1\], got 1.5"),
    "smoothing-categorical": (lambda ops: ops.softmax_categorical_crossentropy(LOGITS, LOGITS, -0.1), ValueError,
                              r"`label_smoothing` must be a float in \[0, 1\], got -0.1"),
    "sample-weight-binary": (lambda ops: ops.sigmoid_binary_crossentropy(LOGITS, LOGITS, sample_weight=_zeros(3)),
                             ValueError, r"`sample_weight` must be float32 of shape \(4,\) \(one weight per sample\)"),
    "sample-weight-sparse": (lambda ops: ops.sparse_softmax_categorical_crossentropy(
        LOGITS, _zeros(4, dtype=np.int32), sample_weight=_zeros(4, 1)), ValueError,
        r"`sample_weight` must be float32 of shape \(4,\)"),
    "sample-weight-mse": (lambda ops: ops.mean_squared_error(LOGITS, LOGITS, sample_weight=_zeros(5)), ValueError,
                          r"`sample_weight` must be float32 of shape \(4,\)"),
    "mse-labels": (lambda ops: ops.mean_squared_error(LOGITS, _zeros(3, 4)), ValueError,
                   r"`labels` must have the shape of `outputs` \(4, 3\), got \(3, 4\)"),
    "mse-0d": (lambda ops: ops.mean_squared_error(_zeros(), _zeros()), ValueError,
               r"`outputs` must have at least one axis \(the last holds the units\)"),
    "clip-offsets": (lambda ops: ops.clip_by_global_norm(PARAM, np.array([4], np.int64), 1.0), ValueError,
                     r"`offsets` must be a 1-D array \[0, ..., 4\] of at least 2 entries"),
    "batchnorm-gamma": (lambda ops: ops.batchnorm_forward_training(X2, _zeros(2), _zeros(3), 1e-3), ValueError,
                        r"`gamma` must have shape \(3,\) \(the channels of x"),
    "batchnorm-moving-var": (lambda ops: ops.batchnorm_forward_inference(X2, *[_zeros(3)] * 3, _zeros(1), 1e-3),
                             ValueError, "`moving_var`"),
    "batchnorm-rank": (lambda ops: ops.batchnorm_forward_training(_zeros(3), _zeros(3), _zeros(3), 1e-3),
                       ValueError, "`x` must have a batch axis and a channel axis"),
    "avgpool-misfit": (lambda ops: ops.average_pool_forward(_zeros(1, 4, 4, 1), (5, 5), (1, 1), "valid"),
                       ValueError, r"pool_size \(5, 5\) does not fit"),
    "avgpool-rank": (lambda ops: ops.average_pool_forward(_zeros(4, 4, 2), (2, 2), (2, 2), "valid"),
                     ValueError, "`x` must have rank 4"),
    "avgpool-dy": (lambda ops: ops.average_pool_backward(_zeros(1, 3, 3, 2), X4.shape, (2, 2), (2, 2), "valid"),
                   ValueError, r"`dy` must have shape \(1, 2, 2, 2\) \(the pooled shape"),
    "global-avgpool-rank": (lambda ops: ops.global_average_pool_forward(_zeros(4, 4, 2)), ValueError,
                            "`x` must have rank 4"),
    "global-avgpool-dy": (lambda ops: ops.global_average_pool_backward(_zeros(1, 3), X4.shape), ValueError,
                          r"`dy` must have shape \(1, 2\) \(batch, channels"),
    "padding-rank": (lambda ops: ops.zero_padding2d_forward(_zeros(3, 3, 1), 1), ValueError,
                     "`x` must have rank 4"),
    "padding-form": (lambda ops: ops.zero_padding2d_forward(_zeros(1, 3, 3, 1), "same"), TypeError,
                     "`padding` must be an int, a tuple of 2 ints"),
    "padding-negative": (lambda ops: ops.zero_padding2d_forward(_zeros(1, 3, 3, 1), -1), ValueError,
                         "`padding` must not be negative"),
    "padding-dy": (lambda ops: ops.zero_padding2d_backward(_zeros(1, 2, 5, 1), 1), ValueError,
                   "`dy` must be larger than the padding 1 in height and width"),
    "add-shapes": (lambda ops: ops.add_forward([X2, _zeros(2, 4)]), ValueError,
                   r"`inputs` must hold arrays of the same shape, got shapes \[\(2, 3\), \(2, 4\)\]"),
    "concatenate-list": (lambda ops: ops.concatenate_forward(X2), TypeError, "`inputs` must be a list of at least 2"),
    "concatenate-shapes": (lambda ops: ops.concatenate_forward([X2, _zeros(3, 3)]), ValueError,
                           "same shape except the last axis"),
    "add-inplace": (lambda ops: ops.add_inplace(X2.copy(), _zeros(2, 4)), ValueError,
                    "`target` and `x` must have the same shape"),
    "concatenate-sizes": (lambda ops: ops.concatenate_backward(_zeros(2, 7), [3, 3]), ValueError,
                          "`sizes` must be at least 2 positive ints adding up"),
    "batchnorm-dy": (lambda ops: ops.batchnorm_backward(_zeros(3, 3), X2, *[_zeros(3)] * 3), ValueError,
                     r"`dy` must have shape \(2, 3\) \(the shape of x\)"),
}


@on_backends("cpu", "emulated")
@pytest.mark.parametrize("call, error, message", BAD_CALLS.values(), ids=BAD_CALLS.keys())
def test_every_backend_rejects_a_bad_argument_in_the_contracts_words(backend, call, error, message):
    with pytest.raises(error, match=message):
        call(backend.ops)
