"""Train the article's CNN (Conv2D 512/256/128 3x3 + MaxPooling2D 3x3 on 100x100x1, sigmoid output)
on real texture photographs: grass (0) vs gravel (1), crops from disjoint regions for validation.

On the cuda backend the model has the article's full width.  On the CPU backends the same architecture
runs with 1/16 of the filters (32/16/8), which trains in a few minutes on two cores; pass --width-divisor
to choose another width.  Run:  python examples/textures_cnn.py [--epochs N] [--backend cpu|cuda]
"""
import argparse
import os
import time

import gpucnn
from gpucnn.layers import Conv2D, Dense, Flatten, MaxPooling2D

OUTPUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "output")


def build_model(width_divisor=1):
    """The article's model, with Flatten() before Dense (without it gpucnn raises a ValueError)."""
    filters = [512 // width_divisor, 256 // width_divisor, 128 // width_divisor]
    model = gpucnn.Sequential(name="textures_cnn")
    model.add(Conv2D(filters[0], kernel_size=(3, 3), activation="relu", input_shape=(100, 100, 1)))
    model.add(MaxPooling2D(pool_size=(3, 3)))
    model.add(Conv2D(filters[1], kernel_size=(3, 3), activation="relu"))
    model.add(MaxPooling2D(pool_size=(3, 3)))
    model.add(Conv2D(filters[2], kernel_size=(3, 3), activation="relu"))
    model.add(MaxPooling2D(pool_size=(3, 3)))
    model.add(Flatten())
    model.add(Dense(1, activation="sigmoid"))
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=gpucnn.backend.BACKEND_NAMES, default=None,
                        help="default: cuda when a GPU is present, else cpu")
    parser.add_argument("--epochs", type=int, default=None, help="default: 10 on cuda, 12 on cpu")
    parser.add_argument("--batch-size", type=int, default=None, help="default: 128 on cuda, 32 on cpu")
    parser.add_argument("--width-divisor", type=int, default=None,
                        help="divide the article's filter counts by this (default: 1 on cuda, 16 on cpu)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    if args.backend:
        gpucnn.set_backend(args.backend)
    on_gpu = gpucnn.get_backend() == "cuda"
    epochs = args.epochs or (10 if on_gpu else 12)
    batch_size = args.batch_size or (128 if on_gpu else 32)
    divisor = args.width_divisor or (1 if on_gpu else 16)
    print(f"backend: {gpucnn.get_backend()}")
    if divisor != 1:
        print(f"CPU configuration: filters divided by {divisor} "
              f"({512 // divisor}/{256 // divisor}/{128 // divisor} instead of 512/256/128), "
              f"batch {batch_size}, {epochs} epochs")

    gpucnn.utils.set_random_seed(args.seed)
    (x_train, y_train), (x_val, y_val) = gpucnn.datasets.textures()
    print(f"data: {len(x_train)} training and {len(x_val)} validation crops of 100x100x1 "
          f"(grass vs gravel)")
    model = build_model(divisor)
    model.summary()
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    history = model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs,
                        validation_data=(x_val, y_val))
    elapsed = time.perf_counter() - start
    val_loss, val_accuracy = model.evaluate(x_val, y_val, verbose=0)
    print(f"training time: {elapsed:.1f} s")
    print(f"final validation accuracy: {val_accuracy:.4f} (loss {val_loss:.4f})")

    os.makedirs(OUTPUT_DIR, exist_ok=True)
    model.save(os.path.join(OUTPUT_DIR, "textures_cnn.gpucnn"))
    try:
        from gpucnn import plot
        plot.plot_history(history, os.path.join(OUTPUT_DIR, "history.png"))
        plot.plot_filters(model, filepath=os.path.join(OUTPUT_DIR, "filters.png"))
        plot.plot_feature_maps(model, x_val[:1], filepath=os.path.join(OUTPUT_DIR, "feature_maps.png"))
    except ImportError as error:  # matplotlib is optional (the `plot` extra)
        print(f"plots skipped: {error}")
    else:
        print(f"model and plots (history, filters, feature maps) written to {OUTPUT_DIR}")
    return history


if __name__ == "__main__":
    main()
