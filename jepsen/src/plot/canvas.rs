//! An RGB pixel buffer that plotters draws on, with text from the built-in bitmap font, encoded
//! to PNG by the `png` crate.

use std::io;
use std::path::Path;

use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendTextStyle, DrawingBackend, DrawingErrorKind,
};

use super::font;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CanvasError(String);

#[derive(Debug)]
pub struct Canvas {
    width: u32,
    height: u32,
    rgb: Vec<u8>,
}

impl Canvas {
    pub fn new(width: u32, height: u32) -> Canvas {
        Canvas {
            width,
            height,
            rgb: vec![255; (width * height * 3) as usize],
        }
    }

    /// The colour at (x, y), for tests.
    pub fn pixel(&self, x: u32, y: u32) -> Option<(u8, u8, u8)> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let i = ((y * self.width + x) * 3) as usize;
        Some((self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]))
    }

    pub fn write_png(&self, path: &Path) -> io::Result<()> {
        let file = std::fs::File::create(path)?;
        let mut encoder = png::Encoder::new(io::BufWriter::new(file), self.width, self.height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(io::Error::other)?;
        writer
            .write_image_data(&self.rgb)
            .map_err(io::Error::other)?;
        writer.finish().map_err(io::Error::other)
    }
}

impl DrawingBackend for &mut Canvas {
    type ErrorType = CanvasError;

    fn get_size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<CanvasError>> {
        Ok(())
    }

    fn present(&mut self) -> Result<(), DrawingErrorKind<CanvasError>> {
        Ok(())
    }

    fn draw_pixel(
        &mut self,
        (x, y): BackendCoord,
        color: BackendColor,
    ) -> Result<(), DrawingErrorKind<CanvasError>> {
        if x < 0 || y < 0 || x as u32 >= self.width || y as u32 >= self.height {
            return Ok(());
        }
        let alpha = color.alpha.clamp(0.0, 1.0);
        let i = ((y as u32 * self.width + x as u32) * 3) as usize;
        let (r, g, b) = color.rgb;
        for (k, c) in [r, g, b].into_iter().enumerate() {
            let old = f64::from(self.rgb[i + k]);
            self.rgb[i + k] = (old + (f64::from(c) - old) * alpha).round() as u8;
        }
        Ok(())
    }

    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        (x, y): BackendCoord,
    ) -> Result<(), DrawingErrorKind<CanvasError>> {
        let scale = font::scale(style.size());
        let (w, h) = font::extent(text, scale);
        let anchor = style.anchor();
        let x0 = match anchor.h_pos {
            HPos::Left => x,
            HPos::Center => x - w as i32 / 2,
            HPos::Right => x - w as i32,
        };
        let y0 = match anchor.v_pos {
            VPos::Top => y,
            VPos::Center => y - h as i32 / 2,
            VPos::Bottom => y - h as i32,
        };
        let color = style.color();
        let step = ((font::WIDTH + font::SPACING) * scale) as i32;
        for (n, c) in text.chars().enumerate() {
            let gx = x0 + n as i32 * step;
            for (row, bits) in font::glyph(c).iter().enumerate() {
                for col in 0..font::WIDTH {
                    if bits & (1 << (font::WIDTH - 1 - col)) == 0 {
                        continue;
                    }
                    for dy in 0..scale {
                        for dx in 0..scale {
                            let px = gx + (col * scale + dx) as i32;
                            let py = y0 + (row as u32 * scale + dy) as i32;
                            self.draw_pixel((px, py), color)?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn estimate_text_size<S: BackendTextStyle>(
        &self,
        text: &str,
        style: &S,
    ) -> Result<(u32, u32), DrawingErrorKind<CanvasError>> {
        Ok(font::extent(text, font::scale(style.size())))
    }
}
