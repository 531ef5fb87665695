-- The image security server's inventory (ARCHITECTURE.md section 7): each
-- inspected image, what it runs (basic information) and its installed
-- packages. Advise compares imagesec_packages with a fix feed; upgrade and
-- publish add rows for the images they produce.

-- One row per image content from one source: re-inspecting the same file
-- (same checksum) updates its row, a changed file gets a new row.
CREATE TABLE imagesec_images (
    id            bigserial PRIMARY KEY,
    -- Where the image came from: "file:///abs/path" (later "glance:<uuid>").
    source        text NOT NULL,
    name          text NOT NULL,
    -- "sha256:<hex>" of the image file as stored at the source.
    checksum      text NOT NULL,
    format        text NOT NULL,
    size          bigint NOT NULL CHECK (size >= 0),
    virtual_size  bigint NOT NULL CHECK (virtual_size >= 0),
    -- "inspected" (the only state this stage writes; collect, upgrade and
    -- publish add theirs).
    status        text NOT NULL,
    inspected_at  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (source, checksum)
);

CREATE INDEX imagesec_images_checksum ON imagesec_images (checksum);

-- What the image runs, one row per image.
CREATE TABLE imagesec_image_info (
    image_id         bigint PRIMARY KEY REFERENCES imagesec_images (id) ON DELETE CASCADE,
    os_family        text NOT NULL,
    distro           text NOT NULL,   -- os-release ID
    os_name          text NOT NULL DEFAULT '',   -- os-release NAME
    distro_version   text NOT NULL,   -- os-release VERSION_ID
    distro_release   text NOT NULL,   -- most precise version known (Debian: /etc/debian_version)
    codename         text NOT NULL DEFAULT '',
    pretty_name      text NOT NULL DEFAULT '',
    id_like          text[] NOT NULL DEFAULT '{}',
    kernel           text NOT NULL DEFAULT '',   -- newest kernel found; '' when none
    kernels          text[] NOT NULL DEFAULT '{}',
    package_format   text NOT NULL,   -- "deb"
    package_manager  text NOT NULL,   -- "apt" or "dpkg"
    partition_table  text NOT NULL,   -- "gpt", "mbr" or "none"
    root_partition   integer NOT NULL,
    -- [{number, start, size, type, name, bootable, filesystem, label, note}]
    partitions       jsonb NOT NULL DEFAULT '[]'
);

CREATE TABLE imagesec_packages (
    image_id        bigint NOT NULL REFERENCES imagesec_images (id) ON DELETE CASCADE,
    name            text NOT NULL,
    version         text NOT NULL,
    architecture    text NOT NULL,
    source          text NOT NULL,
    source_version  text NOT NULL,
    status          text NOT NULL DEFAULT 'installed',
    PRIMARY KEY (image_id, name, architecture)
);

-- Advise looks up the images holding a package (or a source package).
CREATE INDEX imagesec_packages_name ON imagesec_packages (name);
CREATE INDEX imagesec_packages_source ON imagesec_packages (source);
