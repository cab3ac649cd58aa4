"""py4j's view of the driver's JVM, remembering the names it resolved.

PySpark reaches the JVM by name on every call: ``F.col("price")`` asks the JVM what ``functions``
is, then what ``functions.col`` is, and only then calls it. A short name such as ``functions``
or ``PythonUtils`` is looked up in the default package first and then under each of PySpark's
imports in turn, and each miss walks every jar of the classpath. Building one micro-batch's plans
makes thousands of such calls (tests/test_alerts.py: ~16 000 lookups of a class or package in a
minute, a tenth of its driver's CPU in them, before the lookups of the members).

A class, a package, a static method or a nested class does not change while the JVM runs, so
:func:`remember_jvm_names` makes the session's view keep what it resolved: the next access is an
attribute of the Python object, no call at all. A field's value is read again every time, and a
name the JVM does not know is asked again (an error, remembered by nothing).
"""

from __future__ import annotations

from typing import Any

from py4j.java_gateway import JavaClass, JavaMember, JavaPackage, JVMView


def _remembered(owner: object, name: str, found: Any) -> Any:
    """``found`` (what ``owner.name`` resolved to) kept as ``owner``'s attribute when it is a
    name of the JVM's that cannot change, itself remembering the names under it."""
    if type(found) is JavaPackage:
        found.__class__ = _RememberingPackage
    elif type(found) is JavaClass:
        found.__class__ = _RememberingClass
    elif type(found) is not JavaMember:  # a field's value, py4j's help: asked every time
        return found
    owner.__dict__[name] = found
    return found


class _Remembering:
    """What a view, a package or a class of py4j's resolves, kept (``_remembered``)."""

    def __getattr__(self, name: str) -> Any:
        return _remembered(self, name, super().__getattr__(name))  # type: ignore[misc]


class _RememberingView(_Remembering, JVMView):
    pass


class _RememberingPackage(_Remembering, JavaPackage):
    pass


class _RememberingClass(_Remembering, JavaClass):
    pass


def remember_jvm_names(view: JVMView) -> None:
    """Make ``view`` (a gateway's ``jvm``: PySpark's ``SparkContext._jvm``, shared by every
    session of the process) keep the classes, packages and static methods it resolves."""
    if type(view) is JVMView:
        view.__class__ = _RememberingView
