"""``keras.utils.Config``: a dict of named values with attribute access, freezing and JSON."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator
from typing import Any

from bigmodel.errors import ConfigError


class Config:
    """A dict-like container of named values, as Keras 3's ``keras.utils.Config``.

    ``config.lr = 0.1`` and ``config["lr"] = 0.1`` set a value; ``config.lr`` / ``config["lr"]``
    read it; :meth:`freeze` makes it read-only; :meth:`to_json` serializes it.

    Raises:
        ConfigError: a change while frozen (a ``ValueError``, as Keras's).
        AttributeError / KeyError: a missing name (suggesting a close one).
    """

    __attrs__ = None

    def __init__(self, **kwargs: Any):
        object.__setattr__(self, "_config", dict(kwargs))
        object.__setattr__(self, "_frozen", False)
        object.__setattr__(self, "__attrs__", set(dir(self)))

    @property
    def frozen(self) -> bool:
        """Whether the config is read-only."""
        return self._frozen

    def freeze(self) -> None:
        """Make the config read-only."""
        object.__setattr__(self, "_frozen", True)

    def unfreeze(self) -> None:
        """Allow changes again."""
        object.__setattr__(self, "_frozen", False)

    def _check_mutable(self, what: str) -> None:
        if self._frozen:
            raise ConfigError(f"Config: cannot {what}: the config is frozen (call unfreeze())")

    def as_dict(self) -> dict[str, Any]:
        """A copy as a plain dict."""
        return dict(self._config)

    def to_json(self) -> str:
        """The values as a JSON string."""
        return json.dumps(self._config)

    def keys(self) -> Any:
        return self._config.keys()

    def values(self) -> Any:
        return self._config.values()

    def items(self) -> Any:
        return self._config.items()

    def pop(self, *args: Any) -> Any:
        self._check_mutable(f"pop {args[0]!r}" if args else "pop")
        return self._config.pop(*args)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._check_mutable("update")
        self._config.update(*args, **kwargs)

    def get(self, keyname: str, value: Any = None) -> Any:
        return self._config.get(keyname, value)

    def __setattr__(self, name: str, value: Any) -> None:
        self._check_mutable(f"set {name!r}")
        if name in self.__attrs__:  # a real attribute of the object, as Keras
            object.__setattr__(self, name, value)
            return
        self._config[name] = value

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_config", "_frozen"):
            raise AttributeError(name)
        try:
            return self._config[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(self._config), n=1, cutoff=0.7)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise AttributeError(f"Unknown attribute: '{name}'.{hint}") from None

    def __setitem__(self, key: str, item: Any) -> None:
        self._check_mutable(f"set {key!r}")
        self._config[key] = item

    def __getitem__(self, key: str) -> Any:
        return self._config[key]

    def __delitem__(self, key: str) -> None:
        self._check_mutable(f"delete {key!r}")
        del self._config[key]

    def __contains__(self, item: object) -> bool:
        return item in self._config

    def __iter__(self) -> Iterator[str]:
        return iter(self._config)

    def __len__(self) -> int:
        return len(self._config)

    def __repr__(self) -> str:
        return f"<Config {self._config}>"


__all__ = ["Config"]
