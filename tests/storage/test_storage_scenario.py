import pytest

from kvmlab import storage
from kvmlab.errors import ScenarioError

BASE = {"format": "qcow2", "virtual_size": 1048576, "cluster_size": 65536, "writes": []}


@pytest.mark.parametrize(("change", "rule"), [
    ({"cluster_size": 3000}, "power of two between 512 B and 2 MiB"),
    ({"cluster_size": 256}, "power of two between 512 B and 2 MiB"),
    ({"cluster_size": 4 * 1024 * 1024}, "power of two between 512 B and 2 MiB"),
    ({"virtual_size": -512}, "positive multiple of 512"),
    ({"virtual_size": 1000}, "positive multiple of 512"),
    ({"writes": [[1048576, 1]]}, "beyond the virtual size 1048576"),
    ({"writes": [[1048000, 1000]]}, "beyond the virtual size"),
    ({"writes": [[-1, 10]]}, "offset cannot be negative"),
    ({"writes": [[0, 0]]}, "length must be positive"),
    ({"writes": [[0, -5]]}, "length must be positive"),
    ({"backing": "/nonexistent/base.qcow2"}, "does not exist"),
    ({"format": "vdi"}, "not modelled"),
    ({"sectors": 4}, "unknown key 'sectors' in the storage scenario; the keys are"),
    ({"writes": [[0, 1]], "wrtes": []}, "unknown key 'wrtes' .*; did you mean 'writes'"),
    ({"format": "qcow"}, "did you mean 'qcow2'"),
    ({"preallocation": "full"}, "preallocation is a raw image's option"),
    ({"virtual_size": 2**63}, "virtual_size must be at most"),
    ({"virtual_size": 10**30}, "virtual_size must be at most"),
    ({"virtual_size": 512 << 30, "cluster_size": 512}, "too large for the model"),
    ({"cluster_size": 512, "writes": [[0, 1048576]] * 5000}, "too large for the model"),
    ({"writes": "0,1"}, "writes .* must be a list, not a string"),
    ({"backing": {"virtual_size": 512, "backing": 7}}, "backing is the path of an image"),
    ({"name": None}, "name must be a string, not null"),
    ({"snapshots": [{"after": 0, "name": "s", "nmae": "t"}]}, "did you mean 'name'"),
    ({"snapshots": [{"after": 1, "name": "s"}]}, "a whole number from 0 to 0"),
    ({"snapshots": [{"after": 0}]}, "each snapshot is"),
    ({"snapshots": [{"after": 0, "name": "42"}]}, "not all digits"),
    ({"snapshots": [{"after": 0, "name": "a b"}]}, "letters, digits"),
    ({"snapshots": [{"after": 0, "name": "a"}] * 2}, "two snapshots are called 'a'"),
    ({"snapshots": [{"after": 0, "name": f"s{i}"} for i in range(9)]}, "at most 8"),
    ({"snapshots": "s1"}, "a list of"),
])
def test_bad_input_names_the_rule(change, rule):
    with pytest.raises(ScenarioError, match=rule):
        storage.StorageScenario.from_dict({**BASE, **change})


def test_round_trip():
    data = {**BASE, "writes": [[0, 10]], "backing": {**BASE, "writes": [[5, 5]]}}
    s = storage.StorageScenario.from_dict(data)
    assert storage.StorageScenario.from_dict(s.to_dict()) == s


def test_an_image_too_big_for_the_modelled_refcount_table_says_so():
    data = {**BASE, "virtual_size": 16 * 1048576, "cluster_size": 512,
            "writes": [[0, 16 * 1048576]]}
    with pytest.raises(ScenarioError, match="refcount table"):
        storage.simulate(data)


def test_layout_lists_every_cluster_once_in_file_order():
    s = storage.StorageScenario.from_dict({**BASE, "cluster_size": 4096,
                                           "writes": [[0, 10000], [500000, 1]]})
    layout = storage.Qcow2Model.from_scenario(s).layout()
    assert [a.cluster for a in layout] == list(range(len(layout)))
    assert [a.kind for a in layout[:4]] == ["header", "refcount table", "refcount block", "L1"]
    assert [a.kind for a in layout[4:]] == ["L2", "data", "data", "data", "data"]
    assert [a.write for a in layout if a.kind == "data"] == [0, 0, 0, 1]


def test_snapshots_and_raw_images_round_trip():
    data = {**BASE, "writes": [[0, 10], [70000, 5]],
            "snapshots": [{"after": 1, "name": "one"}, {"after": 2, "name": "two"}]}
    s = storage.StorageScenario.from_dict(data)
    assert storage.StorageScenario.from_dict(s.to_dict()) == s
    assert [type(step).__name__ for step in s.steps()] == ["tuple", "Snapshot", "tuple",
                                                           "Snapshot"]
    raw = storage.StorageScenario.from_dict({"format": "raw", "virtual_size": 1048576,
                                             "preallocation": "full"})
    assert storage.StorageScenario.from_dict(raw.to_dict()) == raw
    assert "cluster_size" not in raw.to_dict()


def test_every_cluster_in_use_is_in_the_layout_with_its_references():
    s = storage.StorageScenario.from_dict({**BASE, "writes": [[0, 65536], [131072, 1]],
                                           "snapshots": [{"after": 1, "name": "a"},
                                                         {"after": 1, "name": "b"}]})
    image = storage.Qcow2Model.from_scenario(s)
    assert set(image.allocations) == set(image.refcounts)
    assert image.snapshots == ["a", "b"]
    # two snapshots share guest cluster 0 with the active image; the first L2 copy too
    assert image.refcount(image.data[0]) == 3
    assert image.allocated_clusters == 2
    assert image.image_end_offset == (max(image.refcounts) + 1) * 65536
