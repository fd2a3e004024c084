"""Which of the modules a function uses must travel with it (Clipper #207).

cloudpickle pickles a function defined in an importable module *by
reference*: the pickle says "module helpers, attribute f", and the replica,
which has no helpers.py, fails to load it. Functions of ``__main__`` and
nested functions are pickled by value already; a function or class from a
module next to the user's script is not, and neither is a module object the
function uses (``import helpers`` ... ``helpers.f(x)``).

:func:`local_modules` finds those modules: it walks what the function
refers to (the globals its code names, closure cells, default arguments,
recursively through nested code, functions, classes, module objects and
simple containers) and keeps the modules whose file is not part of the
Python installation (standard library, site-packages, dist-packages).
:func:`pickled_by_value` registers them with cloudpickle's
``register_pickle_by_value`` (cloudpickle >= 2.0) for the duration of one
dump, so their code travels inside the artifact. Nothing here serializes a
module by hand.
"""
import contextlib
import logging
import os
import site
import sys
import sysconfig
import types

logger = logging.getLogger(__name__)

# Packages never captured, wherever they live: this client and the pickler.
_NEVER = ("clipper_admin", "cloudpickle", "numpy", "pytest", "_pytest")
# A bound on the objects visited, so a huge object graph cannot stall a deploy.
MAX_VISITS = 20000
MIN_CLOUDPICKLE = (2, 0)


def _real(path):
    try:
        return os.path.realpath(path)
    except (OSError, ValueError):
        return path


def _install_dirs():
    """Directories whose modules belong to the Python installation."""
    dirs = {sys.prefix, sys.base_prefix, sys.exec_prefix, getattr(sys, "base_exec_prefix", "")}
    for name in ("stdlib", "platstdlib", "purelib", "platlib"):
        try:
            dirs.add(sysconfig.get_paths()[name])
        except KeyError:
            pass
    try:
        dirs.update(site.getsitepackages())
    except AttributeError:  # some virtualenvs' site.py lacks it
        pass
    try:
        dirs.add(site.getusersitepackages())
    except AttributeError:
        pass
    return tuple(sorted({_real(d).rstrip(os.sep) + os.sep for d in dirs if d}))


def is_local_module(module, _dirs=None):
    """True for a module whose source is outside the Python installation:
    a file next to the user's script, or in a directory they put on
    sys.path, which a replica does not have."""
    name = getattr(module, "__name__", None)
    if not isinstance(module, types.ModuleType) or not name or name == "__main__":
        return False
    if name.split(".")[0] in _NEVER or name in sys.builtin_module_names:
        return False
    path = getattr(module, "__file__", None)
    if not path:
        return False  # built in, frozen, or a namespace package
    path = _real(path)
    parts = path.split(os.sep)
    if "site-packages" in parts or "dist-packages" in parts:
        return False
    dirs = _dirs if _dirs is not None else _install_dirs()
    return not any(path.startswith(d) for d in dirs)


def _code_names(code, out):
    out.update(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _code_names(const, out)


def local_modules(obj):
    """The local modules obj (a function, usually) depends on, in the order
    found. A module is local per :func:`is_local_module`; for a submodule
    of a local package, the top-level package is returned (registering it
    covers its submodules)."""
    dirs = _install_dirs()
    found = {}
    seen = set()
    stack = [obj]
    visits = 0

    def note_module(mod):
        if mod is None or not is_local_module(mod, dirs):
            return False
        top = sys.modules.get(mod.__name__.split(".")[0])
        key = top if top is not None and is_local_module(top, dirs) else mod
        found.setdefault(key.__name__, key)
        return True

    while stack and visits < MAX_VISITS:
        o = stack.pop()
        if id(o) in seen:
            continue
        seen.add(id(o))
        visits += 1
        if isinstance(o, types.ModuleType):
            if note_module(o):
                # Its functions and classes travel by value too, and may
                # use further local modules.
                stack.extend(v for k, v in list(vars(o).items()) if not k.startswith("__"))
            continue
        if isinstance(o, types.MethodType):
            stack.append(o.__func__)
            stack.append(o.__self__)
            continue
        if isinstance(o, types.FunctionType):
            note_module(sys.modules.get(getattr(o, "__module__", None) or ""))
            names = set()
            _code_names(o.__code__, names)
            g = o.__globals__
            stack.extend(g[n] for n in names if n in g)
            for cell in o.__closure__ or ():
                try:
                    stack.append(cell.cell_contents)
                except ValueError:  # an empty cell
                    pass
            stack.extend(o.__defaults__ or ())
            stack.extend((o.__kwdefaults__ or {}).values())
            continue
        if isinstance(o, type):
            if not note_module(sys.modules.get(getattr(o, "__module__", None) or "")):
                continue  # an installed class: its methods are not ours
            stack.extend(o.__bases__)
            stack.extend(v for k, v in list(vars(o).items())
                         if not (k.startswith("__") and k.endswith("__")))
            continue
        if isinstance(o, (staticmethod, classmethod)):
            stack.append(o.__func__)
            continue
        if isinstance(o, property):
            stack.extend(f for f in (o.fget, o.fset, o.fdel) if f is not None)
            continue
        if isinstance(o, (list, tuple, set, frozenset)):
            stack.extend(o)
            continue
        if isinstance(o, dict):
            stack.extend(o.values())
            continue
        if isinstance(o, (str, bytes, int, float, complex, bool, type(None))):
            continue
        # Another object: what its class is, and its attributes.
        stack.append(type(o))
        attrs = getattr(o, "__dict__", None)
        if isinstance(attrs, dict):
            stack.extend(attrs.values())
    return list(found.values())


def cloudpickle_supports_by_value(cloudpickle_module):
    return hasattr(cloudpickle_module, "register_pickle_by_value")


def is_registered_by_value(cloudpickle_module, module):
    """Whether module is registered to be pickled by value (cloudpickle 2.x
    has no public test for it; its internal one is used when present)."""
    test = getattr(cloudpickle_module, "is_registered_pickle_by_value", None)
    if test is None:
        inner = getattr(cloudpickle_module, "cloudpickle", None)
        test = getattr(inner, "_is_registered_pickle_by_value", None)
    return bool(test(module)) if test is not None else False


@contextlib.contextmanager
def pickled_by_value(obj, cloudpickle_module):
    """Within the block, cloudpickle pickles obj's local modules by value.
    Yields their names. Registrations made here are undone on exit, also
    when the dump fails; a module the caller had registered stays so."""
    modules = local_modules(obj)
    registered = []
    if modules and not cloudpickle_supports_by_value(cloudpickle_module):
        logger.warning(
            "The function uses the local module(s) %s, which the replicas do not have; "
            "capturing them needs cloudpickle >= %d.%d (this is %s). Install them on the "
            "replicas or upgrade cloudpickle.", ", ".join(m.__name__ for m in modules),
            MIN_CLOUDPICKLE[0], MIN_CLOUDPICKLE[1],
            getattr(cloudpickle_module, "__version__", "unknown"))
        modules = []
    try:
        for m in modules:
            if not is_registered_by_value(cloudpickle_module, m):
                cloudpickle_module.register_pickle_by_value(m)
                registered.append(m)
        if modules:
            logger.info("Capturing the local module(s) %s with the function",
                        ", ".join(m.__name__ for m in modules))
        yield [m.__name__ for m in modules]
    finally:
        for m in registered:
            try:
                cloudpickle_module.unregister_pickle_by_value(m)
            except ValueError:
                pass
