DROP TABLE IF EXISTS imagesec_packages;
DROP TABLE IF EXISTS imagesec_image_info;
DROP TABLE IF EXISTS imagesec_images;
