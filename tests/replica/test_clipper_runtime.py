"""Unit tests of the replica's Python runtime (actors/replica/runtime).

Plain unittest, run with python3 by meson (suite 'unit'); the runtime's
directory comes from CLIPPER_RUNTIME_DIR.
"""

import os
import pickle
import struct
import sys
import unittest

import cloudpickle
import numpy as np

sys.path.insert(0, os.environ.get(
    "CLIPPER_RUNTIME_DIR",
    os.path.join(os.path.dirname(__file__), "..", "..", "actors", "replica",
                 "runtime")))

import clipper_runtime as rt  # noqa: E402


def doubles(*xs):
    return struct.pack("<%dd" % len(xs), *xs)


class ConvertInputs(unittest.TestCase):
    def test_same_length_doubles_become_2d_float64(self):
        batch = rt.convert_inputs(rt.INPUT_DOUBLES,
                                  [doubles(1, 2, 3), doubles(4, 5, 6)])
        self.assertIsInstance(batch, np.ndarray)
        self.assertEqual(batch.dtype, np.float64)
        self.assertEqual(batch.shape, (2, 3))
        self.assertEqual(batch.tolist(), [[1, 2, 3], [4, 5, 6]])

    def test_same_length_floats_become_2d_float32(self):
        batch = rt.convert_inputs(rt.INPUT_FLOATS,
                                  [struct.pack("<2f", 1.5, -2.0)] * 3)
        self.assertEqual(batch.dtype, np.float32)
        self.assertEqual(batch.shape, (3, 2))
        self.assertEqual(batch[2].tolist(), [1.5, -2.0])

    def test_same_length_integers_become_2d_int32(self):
        batch = rt.convert_inputs(rt.INPUT_INTEGERS,
                                  [struct.pack("<2i", -7, 2 ** 31 - 1)])
        self.assertEqual(batch.dtype, np.int32)
        self.assertEqual(batch.tolist(), [[-7, 2 ** 31 - 1]])

    def test_bytes_become_signed_int8_like_clipper(self):
        batch = rt.convert_inputs(rt.INPUT_BYTES, [b"\xff\x01", b"\x80\x7f"])
        self.assertEqual(batch.dtype, np.int8)
        self.assertEqual(batch.tolist(), [[-1, 1], [-128, 127]])

    def test_different_lengths_become_object_array_of_1d_arrays(self):
        batch = rt.convert_inputs(rt.INPUT_DOUBLES,
                                  [doubles(1), doubles(2, 3), doubles(4, 5, 6)])
        self.assertEqual(batch.dtype, object)
        self.assertEqual(batch.shape, (3,))
        self.assertEqual([a.dtype for a in batch], [np.float64] * 3)
        self.assertEqual([a.tolist() for a in batch], [[1], [2, 3], [4, 5, 6]])

    def test_strings_arrive_as_bytes_objects_like_clipper(self):
        batch = rt.convert_inputs(rt.INPUT_STRINGS,
                                  ["héllo".encode(), b"", b"x"])
        self.assertEqual(batch.dtype, object)
        self.assertEqual(list(batch), ["héllo".encode(), b"", b"x"])
        self.assertTrue(all(type(s) is bytes for s in batch))

    def test_numeric_batches_are_writable(self):
        batch = rt.convert_inputs(rt.INPUT_DOUBLES, [doubles(1, 2)])
        batch[0, 0] = 9
        self.assertEqual(batch[0, 0], 9)

    def test_input_not_a_whole_number_of_items_is_an_error(self):
        with self.assertRaises(rt.PredictionError) as cm:
            rt.convert_inputs(rt.INPUT_DOUBLES, [doubles(1), b"\0" * 5])
        self.assertIn("input 1 has 5 bytes", str(cm.exception))


class Predict(unittest.TestCase):
    def test_function_is_called_once_with_the_whole_batch(self):
        calls = []

        def f(xs):
            calls.append(xs.shape)
            return [str(sum(x)) for x in xs]

        out = rt.predict(f, rt.INPUT_DOUBLES, [doubles(1, 2), doubles(3, 4)])
        self.assertEqual(out, ["3.0", "7.0"])
        self.assertEqual(calls, [(2, 2)])

    def test_outputs_go_through_str_like_clippers_closure_container(self):
        out = rt.predict(lambda xs: xs.sum(axis=1), rt.INPUT_INTEGERS,
                         [struct.pack("<2i", 1, 2)] * 2)
        self.assertEqual(out, ["3", "3"])

    def test_empty_batch_does_not_call_the_function(self):
        self.assertEqual(rt.predict(lambda xs: 1 / 0, rt.INPUT_DOUBLES, []),
                         [])

    def test_not_a_list_is_clippers_error(self):
        for bad in (None, 3, "ab", b"ab", {"a": 1}):
            with self.assertRaises(rt.PredictionError) as cm:
                rt.predict(lambda xs, bad=bad: bad, rt.INPUT_DOUBLES,
                           [doubles(1), doubles(2)])
            self.assertTrue(str(cm.exception).startswith(
                "Model did not return a list"), str(cm.exception))

    def test_wrong_length_is_clippers_error(self):
        with self.assertRaises(rt.PredictionError) as cm:
            rt.predict(lambda xs: ["1"], rt.INPUT_DOUBLES,
                       [doubles(1), doubles(2)])
        self.assertEqual(str(cm.exception),
                         "Expected model to return 2 outputs, found 1 outputs")

    def test_non_str_output_is_clippers_error_without_coercion(self):
        with self.assertRaises(rt.PredictionError) as cm:
            rt.predict(lambda xs: ["1", 2, "3"], rt.INPUT_DOUBLES,
                       [doubles(1)] * 3, coerce=False)
        self.assertTrue(str(cm.exception).startswith(
            "Model must return a list of strs. Found <class 'int'> at index 1"))

    def test_tuple_is_not_a_list_without_coercion(self):
        with self.assertRaises(rt.PredictionError) as cm:
            rt.predict(lambda xs: ("1",), rt.INPUT_DOUBLES, [doubles(1)],
                       coerce=False)
        self.assertTrue(str(cm.exception).startswith(
            "Model did not return a list"))

    def test_model_exception_propagates_and_describes_type_message_frames(self):
        def model(xs):
            return helper(xs)

        def helper(xs):
            raise ValueError("bad feature %d" % len(xs))

        # (assertRaises strips the traceback, so catch it by hand.)
        try:
            rt.predict(model, rt.INPUT_DOUBLES, [doubles(1)])
            self.fail("predict did not raise")
        except ValueError as exc:
            cause, full = rt.describe_error(exc)
        self.assertTrue(cause.startswith("ValueError: bad feature 1"), cause)
        self.assertIn("in helper", cause)
        self.assertIn("in model", cause)
        self.assertNotIn("in predict", cause)
        self.assertIn("Traceback", full)
        self.assertIn("in predict", full)

    def test_prediction_error_is_described_by_its_text_alone(self):
        cause, _ = rt.describe_error(rt.PredictionError("Model did not return a list"))
        self.assertEqual(cause, "Model did not return a list")


class Load(unittest.TestCase):
    def test_load_closure_returns_the_function(self):
        f = rt.load_model("python-closure",
                          cloudpickle.dumps(lambda xs: [str(len(xs))] * len(xs)))
        self.assertEqual(rt.predict(f, rt.INPUT_DOUBLES, [doubles(1)] * 2),
                         ["2", "2"])

    def test_empty_runtime_means_python_closure(self):
        f = rt.load_model("", cloudpickle.dumps(len))
        self.assertIs(f, len)

    def test_modules_dir_under_tmp_dir_is_on_sys_path(self):
        import tempfile
        with tempfile.TemporaryDirectory() as d:
            rt.load_closure(cloudpickle.dumps(len), d)
            self.assertIn(os.path.join(d, "modules"), sys.path)
            sys.path.remove(os.path.join(d, "modules"))

    def test_unknown_runtime_names_it(self):
        with self.assertRaises(rt.LoadError) as cm:
            rt.load_model("tensorflow", b"")
        cause, _ = rt.describe_load_error(cm.exception, "m", "1")
        self.assertIn("unknown runtime 'tensorflow'", cause)
        self.assertIn("model m:1", cause)

    def test_corrupted_pickle_says_not_a_valid_pickle(self):
        with self.assertRaises(Exception) as cm:
            rt.load_model("python-closure", b"this is not a pickle")
        cause, _ = rt.describe_load_error(cm.exception, "m", "1")
        self.assertIn("not a valid cloudpickled function", cause)

    def test_truncated_pickle_says_not_a_valid_pickle(self):
        data = cloudpickle.dumps(lambda x: x)
        with self.assertRaises(Exception) as cm:
            rt.load_model("python-closure", data[: len(data) // 2])
        cause, _ = rt.describe_load_error(cm.exception, "m", "1")
        self.assertIn("not a valid cloudpickled function", cause)

    def test_missing_module_names_it_and_pkgs_to_install(self):
        # A function of an importable module is pickled by reference;
        # unpickling it where the module is absent raises ImportError.
        import tempfile
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "clipper_no_such_module_xyz.py"), "w") as f:
                f.write("def f(xs):\n    return [str(x) for x in xs]\n")
            sys.path.insert(0, d)
            try:
                import clipper_no_such_module_xyz as mod
                data = cloudpickle.dumps(mod.f)
            finally:
                sys.path.remove(d)
                del sys.modules["clipper_no_such_module_xyz"]
        with self.assertRaises(ImportError) as cm:
            rt.load_model("python-closure", data)
        cause, _ = rt.describe_load_error(cm.exception, "m", "1")
        self.assertIn("'clipper_no_such_module_xyz'", cause)
        self.assertIn("pkgs_to_install", cause)

    def test_version_mismatch_errors_say_so(self):
        cause, _ = rt.describe_load_error(
            TypeError("code() argument 13 must be str, not int"), "m", "1")
        self.assertIn("different Python or cloudpickle version", cause)
        self.assertIn("Python %d.%d" % sys.version_info[:2], cause)

    def test_non_callable_artifact_is_a_load_error(self):
        with self.assertRaises(rt.LoadError) as cm:
            rt.load_model("python-closure", cloudpickle.dumps(42))
        self.assertIn("not to a callable", str(cm.exception))


def _tar(members):
    """A gzip'd tar of (name, bytes or None for a directory, kind) members."""
    import io
    import tarfile
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data, kind in members:
            info = tarfile.TarInfo(name)
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = data
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class PySparkArtifact(unittest.TestCase):
    """The artifact checks of the pyspark runtime, before any Spark starts."""

    def load(self, data):
        with self.assertRaises(rt.LoadError) as cm:
            rt.load_model("pyspark", data)
        return str(cm.exception)

    def test_not_a_tar_is_a_load_error(self):
        self.assertIn("not a readable gzip'd tar", self.load(b"no tar here"))

    def test_a_member_outside_the_directory_is_refused(self):
        text = self.load(_tar([("../evil.txt", b"x", "file")]))
        self.assertIn("'../evil.txt'", text)

    def test_a_symlink_member_is_refused(self):
        self.assertIn("'link'", self.load(_tar([("link", "/etc/passwd", "symlink")])))

    def test_missing_parts_are_named(self):
        text = self.load(_tar([("func.pkl", cloudpickle.dumps(len), "file"),
                               ("pyspark_model_data", None, "dir")]))
        self.assertIn("no metadata.json", text)

    def test_bad_metadata_is_a_load_error(self):
        text = self.load(_tar([("func.pkl", cloudpickle.dumps(len), "file"),
                               ("metadata.json", b"{}", "file"),
                               ("pyspark_model_data", None, "dir")]))
        self.assertIn("metadata.json is not valid", text)

    def test_an_unknown_model_class_is_named(self):
        text = self.load(_tar([("func.pkl", cloudpickle.dumps(len), "file"),
                               ("metadata.json",
                                b'{"model_class": "no_such_pkg_xyz.Model", "api": "ml"}',
                                "file"),
                               ("pyspark_model_data", None, "dir")]))
        self.assertIn("cannot import the model's class no_such_pkg_xyz.Model", text)

    def test_an_unknown_runtime_names_both_known_ones(self):
        with self.assertRaises(rt.LoadError) as cm:
            rt.load_model("tensorflow", b"")
        self.assertIn("'python-closure' and 'pyspark'", str(cm.exception))


if __name__ == "__main__":
    unittest.main(verbosity=2)
