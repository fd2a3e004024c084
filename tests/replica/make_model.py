"""Writes a test model's artifact: python3 make_model.py NAME OUTFILE.

Each NAME is a small function cloudpickled the way deploy_python_closure
does it (functions defined in __main__ are pickled by value), or a broken
artifact for the failure tests.
"""

import json
import os
import sys
import tempfile
import time

import cloudpickle


def sum_rows(xs):
    return [str(sum(x)) for x in xs]


def describe(xs):
    # What the function received, one JSON object per input.
    out = []
    for x in xs:
        d = {"batch_type": type(xs).__name__,
             "batch_dtype": str(getattr(xs, "dtype", "")),
             "batch_shape": list(getattr(xs, "shape", [])),
             "item_type": type(x).__name__,
             "item_dtype": str(getattr(x, "dtype", ""))}
        if isinstance(x, bytes):
            d["value"] = x.decode("utf-8", "replace")
        else:
            d["value"] = x.tolist()
        out.append(json.dumps(d, sort_keys=True))
    return out


def raise_on_negative(xs):
    for x in xs:
        if x[0] < 0:
            raise ValueError("negative input %s" % x[0])
    return [str(sum(x)) for x in xs]


def not_a_list(xs):
    return 42


def wrong_length(xs):
    return ["1"]


def non_str(xs):
    return [float(len(x)) for x in xs]


def numpy_sum(xs):
    return xs.sum(axis=1)


def system_exit(xs):
    raise SystemExit(3)


def slow_sum(xs):
    time.sleep(1.0)
    return [str(sum(x)) for x in xs]


def missing_module():
    # A function of an importable module is pickled by reference; the
    # replica does not have the module, so unpickling fails to import it.
    d = tempfile.mkdtemp()
    with open(os.path.join(d, "clipper_test_missing_mod.py"), "w") as f:
        f.write("def predict(xs):\n    return [str(x) for x in xs]\n")
    sys.path.insert(0, d)
    import clipper_test_missing_mod
    data = cloudpickle.dumps(clipper_test_missing_mod.predict)
    os.remove(os.path.join(d, "clipper_test_missing_mod.py"))
    return data


class _OtherPythonsCode:
    """Unpickles the way a function pickled by another Python version does:
    its code object is rebuilt with the other version's argument list."""

    def __reduce__(self):
        import types
        return (types.CodeType, (0, 0, 0))


FUNCS = {
    "sum": sum_rows,
    "describe": describe,
    "raise": raise_on_negative,
    "not_list": not_a_list,
    "wrong_len": wrong_length,
    "non_str": non_str,
    "numpy_sum": numpy_sum,
    "slow_sum": slow_sum,
    "system_exit": system_exit,
}


def main():
    name, path = sys.argv[1], sys.argv[2]
    if name == "missing_module":
        data = missing_module()
    elif name == "corrupt":
        data = b"this is not a pickle at all"
    elif name == "version_skew":
        data = cloudpickle.dumps(_OtherPythonsCode())
    elif name == "not_callable":
        data = cloudpickle.dumps({"a": 1})
    else:
        data = cloudpickle.dumps(FUNCS[name])
    with open(path, "wb") as f:
        f.write(data)


if __name__ == "__main__":
    main()
