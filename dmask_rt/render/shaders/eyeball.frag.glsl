#version 330 core
// Eyeball colour from the angle between the local direction and the gaze axis (0, 0, -1):
// black pupil, brown iris with radial fibres and a darker limbal ring, white sclera.
uniform vec3 u_light_dir;
uniform float u_ambient;
uniform vec3 u_sclera;
uniform vec3 u_iris;
uniform vec3 u_pupil;
uniform float u_pupil_angle;  // radians: asin(pupil_radius / eyeball_radius)
uniform float u_iris_angle;   // radians: asin(iris_radius / eyeball_radius)
in vec3 v_dir;
in vec3 v_normal;
in vec3 v_pos;
out vec4 f_color;

void main() {
    vec3 d = normalize(v_dir);
    float angle = acos(clamp(-d.z, -1.0, 1.0));
    float edge = fwidth(angle);   // about one pixel of angle: antialiased borders without MSAA

    float t = angle / u_iris_angle;
    float phi = atan(d.y, d.x + 1e-9);   // the offset avoids atan(0, 0) at the pupil centre
    float fibres = 1.0 + 0.08 * sin(41.0 * phi) * sin(13.0 * phi + 9.0 * t);
    float limbus = 1.0 - 0.55 * smoothstep(0.72, 1.0, t);
    vec3 albedo = mix(u_pupil, u_iris * fibres * limbus,
                      smoothstep(u_pupil_angle - edge, u_pupil_angle + edge, angle));
    albedo = mix(albedo, u_sclera, smoothstep(u_iris_angle - edge, u_iris_angle + edge, angle));

    vec3 n = normalize(v_normal);
    vec3 v = normalize(-v_pos);
    float diffuse = max(dot(n, u_light_dir), 0.0);
    // The wet cornea's catchlight: small, white and near the pupil, as a screen in front
    // of the patient puts it. (Lit by the key light from the upper left it was broad and
    // sat on the upper iris, where, blended with the brown, it took the colour of skin
    // just under the upper lid: the lid read lower than drawn.)
    const vec3 catch_dir = vec3(-0.225, -0.315, -0.922);
    float spec = pow(max(dot(n, normalize(catch_dir + v)), 0.0), 1500.0);
    f_color = vec4(albedo * (u_ambient + (1.0 - u_ambient) * diffuse) + spec, 1.0);   // alpha 1: opening
}
