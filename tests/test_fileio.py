import pytest

from glassgnn.fileio import OutputExistsError, atomic_directory, atomic_path


def test_atomic_path_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "result.txt"
    target.write_text("finished")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert target.read_text() == "finished"
    assert list(tmp_path.iterdir()) == [target]


def test_atomic_directory_refuses_existing_without_overwrite(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep").write_text("x")
    with pytest.raises(OutputExistsError), atomic_directory(out):
        pass
    with atomic_directory(out, overwrite=True) as tmp:
        (tmp / "new").write_text("y")
    assert sorted(p.name for p in out.iterdir()) == ["new"]
