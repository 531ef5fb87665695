DROP TABLE IF EXISTS imagesec_lineage;
DROP TABLE IF EXISTS imagesec_jobs;
DROP TABLE IF EXISTS imagesec_glance_images;
