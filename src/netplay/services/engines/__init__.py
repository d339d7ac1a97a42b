"""The engines that come with netplay, one module each; importing one registers it.

:func:`netplay.services.registered` imports every module here.  To add a kind,
add a module like :mod:`netplay.services.engines.echo` (the documented
example, docs/services.md): an :class:`~netplay.services.Engine` subclass
and a :func:`~netplay.services.register` call.
"""
