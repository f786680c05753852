//! QR codes drawn on the server as inline SVG: the secret never goes to a third-party QR service
//! or into a URL.

use qrcode::QrCode;
use qrcode::render::svg;

/// The SVG markup of a QR code for `data`.
pub fn svg(data: &str) -> String {
    match QrCode::new(data.as_bytes()) {
        Ok(code) => code
            .render::<svg::Color>()
            .min_dimensions(200, 200)
            .quiet_zone(true)
            .dark_color(svg::Color("#000000"))
            .light_color(svg::Color("#ffffff"))
            .build(),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn draws_svg() {
        let s = super::svg("otpauth://totp/tessera:alice?secret=JBSWY3DPEHPK3PXP&issuer=tessera");
        assert!(s.contains("<svg") && s.contains("</svg>"));
        assert!(
            !s.contains("JBSWY3DPEHPK3PXP"),
            "the secret is drawn, not written"
        );
    }
}
