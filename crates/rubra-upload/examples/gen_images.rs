//! Writes N noise images of about 100 KB (PNG and JPEG alternating) to a folder,
//! for the upload benchmark: `gen_images DIR N`.

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("DIR"));
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(2000);
    std::fs::create_dir_all(&dir).expect("mkdir");
    for i in 0..n {
        let mut s = (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let (w, h, fmt, ext) = if i % 2 == 0 {
            (186, 180, image::ImageFormat::Png, "png")
        } else {
            (300, 200, image::ImageFormat::Jpeg, "jpg")
        };
        let img = image::RgbImage::from_fn(w, h, |_, _| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            image::Rgb([s as u8, (s >> 8) as u8, (s >> 16) as u8])
        });
        let sub = dir.join(format!("d{}", i % 10));
        std::fs::create_dir_all(&sub).expect("mkdir");
        img.save_with_format(sub.join(format!("img{i:05}.{ext}")), fmt)
            .expect("save");
    }
}
