"""Lists: iterate every item (pages fetched lazily along `next_cursor`) or read one page.

for run in client.runs.search(filter="metrics.auc > 0.8"):   # all of them, page by page
    ...
first = client.runs.search(order_by="metrics.auc desc").page(limit=10)
more = client.runs.search(order_by="metrics.auc desc").page(limit=10, cursor=first.next_cursor)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

T = TypeVar("T", bound=BaseModel)

DEFAULT_LIMIT = 100  # items per request while iterating (the server allows at most 500)

Fetch = Callable[[dict[str, Any]], Any]  # query parameters → the page's JSON


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None  # pass as `cursor` for the next page; None on the last one


class Pages(Generic[T]):
    """The items of a list operation; nothing is fetched until iterated or `page()` is called."""

    def __init__(self, fetch: Fetch, item: type[T], *, limit: int = DEFAULT_LIMIT) -> None:
        self._fetch, self._item, self._limit = fetch, item, limit

    def page(self, *, limit: int | None = None, cursor: str | None = None) -> Page[T]:
        """One page of at most `limit` items, starting at `cursor` (None: the first page)."""
        data = self._fetch({"limit": limit or self._limit, "cursor": cursor})
        return Page([self._item.model_validate(i) for i in data["items"]], data["next_cursor"])

    def pages(self, *, limit: int | None = None) -> Iterator[Page[T]]:
        """Every page of at most `limit` items, each fetched when the previous one is used up."""
        cursor: str | None = None
        while True:
            page = self.page(limit=limit, cursor=cursor)
            yield page
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def __iter__(self) -> Iterator[T]:
        for page in self.pages():
            yield from page.items
