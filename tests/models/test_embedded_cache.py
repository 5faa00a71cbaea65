"""The embedded model's cache folder is made once when several processes start together
(``serve`` beside ``eval``, two replicas on one cache volume): the cache lock."""

from __future__ import annotations

import threading
import time

from ie_service.models import embedded


def test_concurrent_first_uses_convert_once_and_all_see_the_whole_folder(tmp_path, monkeypatch):
    calls: list[int] = []

    def slow_convert(src, out):
        calls.append(1)
        time.sleep(0.3)  # a reader in this window would see a half-made or removed folder
        for name in ("config.json", "model.safetensors", "tokenizer.json"):
            (out / name).write_text("x")

    monkeypatch.setattr(embedded, "convert_gguf", slow_convert)
    monkeypatch.setattr(embedded, "gguf_path", lambda: tmp_path / "model.gguf")
    seen: list[bool] = []

    def first_use() -> None:
        folder = embedded.ensure_base_model(tmp_path)
        seen.append(embedded._is_complete(folder))

    threads = [threading.Thread(target=first_use) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [1] and seen == [True] * 4
    assert [p.name for p in (tmp_path / "models").iterdir() if p.name != ".lock"] == [embedded.MODEL_DIRNAME]
