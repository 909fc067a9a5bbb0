"""Editing a Unity asset bundle with UnityPy: the generic half of the sample builder.

UnityPy cannot write a bundle from nothing, so every bundle we make starts as a copy of a template
bundle whose objects we rename, re-fill or delete. `EditableBundle` wraps one loaded template and
keeps the bookkeeping that Unity expects consistent:

- the AssetBundle object's container (asset path -> object), kept sorted by path as Unity writes it;
- its preload table (the objects each container entry pulls in), re-laid after deletions;
- the name of the serialized file inside the bundle (`CAB-<md5 of the bundle name>`, as Unity names
  it), so that two bundles loaded side by side never share a CAB name;
- the `.resS` resource file beside it, which holds texture pixels that are streamed instead of inline.

`painting_quads` reads an Azur Lane painting Mesh: which texture rectangle goes where.

Objects are edited as plain typetree dicts (`read` / `write`); texture pixels are encoded with
UnityPy's own encoder (`set_texture`).
"""
from __future__ import annotations

import copy
import hashlib
from typing import Iterable

import numpy as np
import UnityPy
from PIL import Image
from UnityPy.enums import TextureFormat
from UnityPy.export.Texture2DConverter import image_to_texture2d
from UnityPy.files import SerializedFile
from UnityPy.helpers.MeshHelper import MeshHandler
from UnityPy.streams import EndianBinaryWriter


class EditableBundle:
    """One template bundle, loaded from bytes, ready to be changed and saved as a new bundle."""

    def __init__(self, template: bytes):
        self.env = UnityPy.load(template)           # UnityPy environment holding just this bundle
        self.bundle = self.env.file                 # the BundleFile (UnityFS container)
        serialized = [f for f in self.bundle.files.values() if isinstance(f, SerializedFile)]
        if len(serialized) != 1:
            raise ValueError(f"expected one serialized file in the template, found {len(serialized)}")
        self.assets = serialized[0]                 # the SerializedFile whose objects we edit
        self._resource = bytearray()                # pixels streamed into the new .resS (see stream_texture)
        self._edited: dict[int, dict] = {}          # path id -> latest typetree we wrote

    # --- finding and editing objects -------------------------------------------------------------

    @property
    def cab_name(self) -> str:
        return next(k for k, v in self.bundle.files.items() if v is self.assets)

    def objects(self, type_name: str | None = None) -> list:
        """Object readers in path-id order, optionally only those of one class (e.g. "Texture2D")."""
        objs = sorted(self.assets.objects.values(), key=lambda o: o.path_id)
        return [o for o in objs if type_name is None or o.type.name == type_name]

    def one(self, type_name: str, name: str | None = None):
        """The single object of a class (and name); an error when there is not exactly one."""
        found = [o for o in self.objects(type_name) if name is None or self.read(o)["m_Name"] == name]
        if len(found) != 1:
            raise ValueError(f"expected one {type_name} {name or ''} in the template, found {len(found)}")
        return found[0]

    def read(self, obj) -> dict:
        """The object's typetree as a dict, including our earlier edits.

        UnityPy's ObjectReader keeps reading its original bytes after `save_typetree`, so the
        latest version of every edited object is kept here.
        """
        if obj.path_id not in self._edited:
            return obj.read_typetree()
        return copy.deepcopy(self._edited[obj.path_id])

    def write(self, obj, tree: dict) -> None:
        obj.save_typetree(tree)
        self._edited[obj.path_id] = copy.deepcopy(tree)

    def rename(self, obj, new_name: str) -> None:
        tree = self.read(obj)
        tree["m_Name"] = new_name
        self.write(obj, tree)

    def set_texture(self, obj, image: Image.Image, fmt: TextureFormat, name: str) -> None:
        """Replace a Texture2D's pixels (image given top row first, as PIL holds it) and its name.

        This does what UnityPy's `Texture2D.set_image` does, on the dict, so that later edits of
        the same texture (see `stream_texture`) see the new pixels.
        """
        tree = self.read(obj)
        data, got = image_to_texture2d(image, fmt, obj.platform, tree.get("m_PlatformBlob"))
        if got != fmt:
            # UnityPy silently falls back to RGBA32 for formats it cannot encode; we want to know.
            raise ValueError(f"UnityPy encoded {name} as {got.name}, not {fmt.name}")
        tree.update({"m_Name": name, "m_Width": image.width, "m_Height": image.height,
                     "image data": data, "m_CompleteImageSize": len(data), "m_TextureFormat": int(got),
                     "m_StreamData": {"offset": 0, "size": 0, "path": ""}})
        if "m_MipCount" in tree:   # we store no mipmaps; older Unity versions say so with m_MipMap
            tree["m_MipCount"] = 1
        if "m_MipMap" in tree:
            tree["m_MipMap"] = False
        self.write(obj, tree)

    def stream_texture(self, obj) -> None:
        """Move a texture's pixels out of the object into the bundle's `.resS` file.

        Unity 5.5+ writes large textures this way (`m_StreamData` points into the `.resS`); the
        sample covers it so that readers which only look at inline pixels fail on it.
        """
        tree = self.read(obj)
        data = bytes(tree["image data"])
        offset = len(self._resource)
        self._resource += data
        self._resource += b"\0" * (-len(self._resource) % 16)   # Unity aligns each blob to 16 bytes
        cab = self.cab_name
        tree["image data"] = b""
        tree["m_StreamData"] = {"offset": offset, "size": len(data), "path": f"archive:/{cab}/{cab}.resS"}
        self.write(obj, tree)

    # --- the AssetBundle object: names, containers, preload table -----------------------------------

    def set_bundle_name(self, name: str) -> None:
        """Name the bundle (AssetBundle m_Name and m_AssetBundleName) and its CAB file after it."""
        ab = self.one("AssetBundle")
        tree = self.read(ab)
        tree["m_Name"] = name
        tree["m_AssetBundleName"] = name
        self.write(ab, tree)
        # Unity names the serialized file CAB-<md5 of the bundle name>; copies of one template
        # would otherwise all share a CAB name and clash when loaded into one UnityPy environment.
        old_cab = self.cab_name
        new_cab = "CAB-" + hashlib.md5(name.encode("utf-8")).hexdigest()
        renamed = {}
        for key, f in self.bundle.files.items():
            new_key = new_cab + key[len(old_cab):] if key.startswith(old_cab) else key
            if hasattr(f, "name"):
                f.name = new_key
            renamed[new_key] = f
        self.bundle.files = renamed

    def containers(self) -> list[tuple[str, int]]:
        """(container path, path id) pairs as stored in the AssetBundle object."""
        tree = self.read(self.one("AssetBundle"))
        return [(path, entry["asset"]["m_PathID"]) for path, entry in tree["m_Container"]]

    def set_container_paths(self, paths: dict[int, str]) -> None:
        """Give the container entries of these objects (by path id) new asset paths."""
        ab = self.one("AssetBundle")
        tree = self.read(ab)
        entries = [(paths.get(e["asset"]["m_PathID"], p), e) for p, e in tree["m_Container"]]
        # Unity keeps the container sorted by path (it is a multimap); a stable sort keeps the
        # order of entries that share one path (a texture and its sprite).
        tree["m_Container"] = sorted(entries, key=lambda pe: pe[0])
        self.write(ab, tree)

    def remove_objects(self, path_ids: Iterable[int]) -> None:
        """Delete objects, their container entries and their preload-table rows."""
        doomed = set(path_ids)
        ab = self.one("AssetBundle")
        tree = self.read(ab)
        table = tree["m_PreloadTable"]
        new_table: list[dict] = []
        moved: dict[tuple[int, int], tuple[int, int]] = {}   # old (index, size) -> new (index, size)
        kept = []
        for path, entry in tree["m_Container"]:
            if entry["asset"]["m_PathID"] in doomed:
                continue
            span = (entry["preloadIndex"], entry["preloadSize"])
            if span not in moved:   # entries may share one span (texture + sprite of one image)
                rows = [r for r in table[span[0]:span[0] + span[1]] if r["m_PathID"] not in doomed]
                moved[span] = (len(new_table), len(rows))
                new_table += rows
            entry["preloadIndex"], entry["preloadSize"] = moved[span]
            kept.append((path, entry))
        tree["m_Container"] = kept
        tree["m_PreloadTable"] = new_table
        self.write(ab, tree)
        for pid in doomed:
            del self.assets.objects[pid]
            self._edited.pop(pid, None)
        self.assets.mark_changed()

    # --- saving ----------------------------------------------------------------------------------

    def save(self) -> bytes:
        """The edited bundle as LZ4-compressed UnityFS bytes.

        Any `.resS` the template carried is replaced: its old contents belonged to the template's
        textures, which we have re-encoded inline or streamed into `self._resource`.
        """
        files = {k: v for k, v in self.bundle.files.items() if not k.endswith(".resS")}
        if self._resource:
            writer = EndianBinaryWriter(bytes(self._resource))
            writer.flags = 0   # a plain data node, as Unity writes resource files
            files[self.cab_name + ".resS"] = writer
        self.bundle.files = files
        return self.bundle.save(packer="lz4")


def painting_quads(mesh_obj, tex_size: tuple[int, int]) -> tuple[tuple[int, int], list[tuple]]:
    """The painting size and, per quad, (texture box, painting corner), both top-down pixels.

    Every 4 vertices are one quad: positions (y up) place it in the painting, uvs (v up) pick its
    rectangle in the texture. Quad sizes in texture and painting can differ by a pixel through
    rounding; the texture rectangle decides.
    """
    mesh = MeshHandler(mesh_obj.parse_as_object())
    mesh.process()
    pos, uv = np.asarray(mesh.m_Vertices, dtype=float), np.asarray(mesh.m_UV0, dtype=float)
    assert pos.shape[1] == 3 and uv.shape[1] == 2 and len(pos) == len(uv) and len(pos) % 4 == 0
    tw, th = tex_size
    pw, ph = round(pos[:, 0].max()), round(pos[:, 1].max())
    quads = []
    for q in range(0, len(pos), 4):
        p, t = pos[q:q + 4], uv[q:q + 4]
        box = (round(t[:, 0].min() * tw), round((1 - t[:, 1].max()) * th),
               round(t[:, 0].max() * tw), round((1 - t[:, 1].min()) * th))
        quads.append((box, (round(p[:, 0].min()), round(ph - p[:, 1].max()))))
    return (pw, ph), quads
